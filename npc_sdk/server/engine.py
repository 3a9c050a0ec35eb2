"""The serving engine: a turn backend and the store it commits to, built in one place.

`open_local` loads the model, runs a first turn through every graph, opens the store and starts the scheduler that
owns them: `npc-sdk serve` runs one, and so does each cluster replica (cluster_replica.py). `open_cluster` is cluster
mode's front door: the shared store and a `ClusterScheduler` over a handle to the replicas (nothing here imports
ray; app.py connects).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError
from ..runtime.onnx_model import OnnxNpcModel
from .backend import TurnBackend
from .config import ServerConfig
from .remote import ClusterScheduler
from .scheduler import Scheduler
from .store import SessionStore, is_postgres_url, open_store
from .warmup import warm_graphs


@dataclass(frozen=True)
class LocalSpec:
    """What a local engine is built from: `serve`'s flags, or a cluster replica's deployment argument."""

    model_path: str  # the model folder
    store: str  # a SQLite file, or a postgresql:// URL
    slots: int = 8  # turns decoded at once (one cache slot each)
    kv_budget_mb: int = 512  # host memory for the KV state of idle sessions
    max_queued: int = 64  # turns waiting for a slot; more are refused
    device: str = "cpu"  # onnxruntime provider
    threads: int = 0  # onnxruntime threads per graph; 0 = its default (all cores)
    prefill_graph: bool = True  # load decoder_prefill.onnx where the export wrote one
    shared_store: bool = False  # other replicas commit to it too: live copies are checked before each turn

    @classmethod
    def serving(cls, model_path: Path, config: ServerConfig) -> LocalSpec:
        """`npc-sdk serve` without a cluster: SQLite in the data folder unless --store says otherwise."""
        return cls(
            str(model_path),
            config.store or str(Path(config.data_dir) / "sessions.sqlite3"),
            slots=config.slots,
            kv_budget_mb=config.kv_budget_mb,
            max_queued=config.max_queued,
            device=config.device,
            threads=config.threads,
            prefill_graph=config.prefill_graph,
        )

    @classmethod
    def replica(cls, model_path: Path, config: ServerConfig) -> LocalSpec:
        """One Ray Serve replica of `npc-sdk serve --cluster` (its CPU share set by --replica-threads)."""
        return cls(
            str(Path(model_path).resolve()),  # a replica may start in another working directory
            config.store,
            slots=config.slots,
            kv_budget_mb=config.kv_budget_mb,
            max_queued=config.max_queued,
            threads=config.replica_threads,
            prefill_graph=config.prefill_graph,
            shared_store=True,
        )


@dataclass
class Engine:
    backend: TurnBackend  # runs the turns (started)
    store: SessionStore  # where they are committed
    described: str  # what is served, for the line `serve` prints

    def close(self) -> None:
        """Stop the backend first (its running turns end unstored), then close the store they commit to."""
        self.backend.stop()
        self.store.close()


def open_local(spec: LocalSpec) -> Engine:
    """The model (warmed up), the store and a started scheduler over both."""
    model = OnnxNpcModel.load(
        spec.model_path,
        slots=spec.slots,
        device=spec.device,
        threads=spec.threads or None,
        prefill_graph=spec.prefill_graph,
    )
    warm_graphs(model)
    store = open_store(spec.store)
    scheduler = Scheduler(
        model,
        store,
        kv_budget_bytes=spec.kv_budget_mb << 20,
        max_queued=spec.max_queued,
        shared_store=spec.shared_store,
    )
    scheduler.start()
    return Engine(scheduler, store, model.describe())


def check_cluster_store(config: ServerConfig) -> None:
    """Cluster mode needs a store every replica reaches; said before anything is deployed."""
    if not is_postgres_url(config.store):
        raise InvalidInputError(
            "store", "cluster mode needs a PostgreSQL store every replica reaches (--store)"
        )


def open_cluster(handle: object, model_path: Path, config: ServerConfig) -> Engine:
    """The front door: the shared store, and turns sent to the replicas behind `handle` (cluster_replica.connect)."""
    check_cluster_store(config)
    described = f"{config.replicas} Ray Serve replicas of {model_path} via {config.cluster}"
    return Engine(ClusterScheduler(handle, config.defaults), open_store(config.store), described)
