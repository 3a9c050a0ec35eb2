"""ServerConfig: what `npc-sdk serve` is told (address, limits, keys, TLS, folders)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..runtime.generation import GenerationConfig
from .api_keys import ApiKey


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"  # loopback unless told otherwise
    port: int = 50051  # 0 picks a free port (printed at start)
    data_dir: Path = field(default_factory=lambda: Path("npc-data"))  # sessions.sqlite3 lives here
    store: str = ""  # "" (SQLite in data_dir) or a postgresql://user:pass@host:port/db URL
    cluster: str = (
        ""  # a Ray cluster address: turns run on Ray Serve replicas (docs/scaling.md); "" runs them here
    )
    replicas: int = 2  # cluster mode: NpcReplica replicas deployed when the app is not running yet
    replica_threads: int = 0  # cluster mode: onnxruntime threads (and Ray CPUs) per replica; 0 = all, 1 CPU
    replica_resource: str = ""  # cluster mode: a custom Ray resource a node must offer to host a replica
    api_key: str | None = None  # when set, every RPC but health needs "authorization: Bearer <key>"
    slots: int = 8  # turns decoded at once (one cache slot each)
    device: str = (
        "cpu"  # onnxruntime provider: cpu, or cuda (onnxruntime-gpu; asked for and absent is an error)
    )
    prefill_graph: bool = True  # load decoder_prefill.onnx where the export wrote one (faster first tokens)
    max_sessions: int = 100_000
    max_queued: int = 64  # turns waiting for a slot
    max_message_mb: int = 64
    kv_budget_mb: int = 512  # host memory for the KV state of idle sessions
    grace_s: float = 5.0  # on SIGTERM: how long running turns may finish
    personas_dir: Path | None = None  # persona files (TOML, JSON, V2 cards) offered by persona_id
    tls_cert: Path | None = None  # PEM certificate chain: serve TLS instead of plaintext
    tls_key: Path | None = None  # its PEM private key
    api_keys: list[ApiKey] = field(default_factory=list)  # keys with per-key limits (--api-keys FILE)
    snapshot_key: bytes | None = None  # HMAC key for save games; default: data_dir/snapshot.key, made once
    defaults: GenerationConfig = field(default_factory=GenerationConfig)
    threads: int = 0  # onnxruntime threads per graph; 0 = all cores (a game keeps its frame rate with 1)
    parent_pid: int = 0  # stop when this process ends (the game that launched the server); 0: no watch
    nice: int = 0  # run at a lower OS priority (POSIX niceness 1..19; Windows below-normal); 0: unchanged
