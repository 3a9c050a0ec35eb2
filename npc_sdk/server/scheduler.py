"""Scheduler: the one thread that owns the model, the live sessions and the batch.

Everything that touches the decoder runs here, so there are no locks around the cache: RPC handlers send
commands (`call`) and chat jobs (`submit`) and wait for their answers. Each loop admits waiting turns into free
cache slots (prefilling them), drops cancelled ones, and advances every running reply by one token in a single
onnxruntime call. A finished turn is committed to the store before its Done event is handed to the RPC.

Residency: a session's KV state lives in a cache slot while it can; when a turn needs a slot and none is free,
the least recently used idle session is parked (its KV copied to host memory). Parked KV beyond the budget is
dropped, oldest first, and rebuilt from the stored history on that session's next turn.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from ..errors import (
    InvalidInputError,
    LimitExceededError,
    NpcError,
    SessionBusyError,
    SessionNotFoundError,
    UnavailableError,
)
from ..personas.persona import Persona
from ..personas.prompt import Turn
from ..runtime.batch import BatchGenerator
from ..runtime.conversation import Conversation, PreparedTurn
from ..runtime.events import Delta, Done, ReplyEvent, Timings, Usage
from ..runtime.generation import GenerationConfig
from ..runtime.onnx_model import OnnxNpcModel, SlotSource
from ..runtime.scene import SceneEntity
from .store import SessionStore

log = logging.getLogger("npc_sdk.server")
MAX_QUEUED_PER_SESSION = 4  # a session's turns waiting or running; more are RESOURCE_EXHAUSTED


@dataclass
class ChatJob:
    session_id: str
    text: str
    screenshot: Image.Image | None
    config: GenerationConfig | Callable[[Persona], GenerationConfig]  # or made from the session's persona
    emit: Callable[[ReplyEvent | BaseException], None]  # thread-safe hand-off to the waiting RPC
    scene: list[SceneEntity] = field(default_factory=list)  # what the game says is in view
    state: dict[str, str] = field(default_factory=dict)  # the game's key/value facts (ChatRequest.state)
    turn_id: str = ""  # ChatRequest.turn_id: stored with the turn, so a retry finds it
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.perf_counter)


@dataclass
class LiveSession:
    id: str
    persona: Persona
    created_ms: int
    conversation: Conversation
    queued: int = 0  # turns waiting or running for this session
    running: bool = False  # one of them is decoding now

    @property
    def busy(self) -> bool:
        return self.queued > 0

    def turn_ended(self) -> None:
        self.running = False
        self.queued -= 1


@dataclass
class _Running:
    job: ChatJob
    session: LiveSession
    turn: PreparedTurn


class Scheduler:
    def __init__(
        self,
        model: OnnxNpcModel,
        store: SessionStore,
        *,
        kv_budget_bytes: int = 512 << 20,
        max_queued: int = 64,
        max_live: int = 10_000,
        shared_store: bool = False,
    ) -> None:
        self.model = model
        # Cluster replicas share one store: a session may have moved on elsewhere since this replica held it
        # (failover and back), so its live copy is checked against the store before each turn.
        self.shared_store = shared_store
        self.store = store
        self.kv_budget_bytes = kv_budget_bytes  # parked (host-memory) KV state of idle sessions, in total
        self.max_queued = max_queued  # turns waiting for a slot; more are refused
        self.max_live = max_live  # sessions kept loaded; the rest reload from the store on use
        self.batch = BatchGenerator(model)
        self.live: OrderedDict[str, LiveSession] = OrderedDict()  # LRU order: least recently used first
        self.running: dict[int, _Running] = {}  # slot -> turn
        self.waiting: deque[ChatJob] = deque()
        # Persona blocks to prefill while nothing else runs, so a long card's first turn does not pay for its
        # ~2,000-position block (seconds on two cores): (persona, block ids, slot, positions done).
        self._to_warm: deque[Persona] = deque()
        self._warming: tuple[Persona, list[int], int, int] | None = None
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="npc-scheduler", daemon=True)

    # ---- the RPC side ------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def call(self, fn: Callable[[], Any]) -> Future:
        """Run `fn` on the scheduler thread; the future holds its result or exception."""
        fut: Future = Future()
        self._inbox.put((fn, fut))
        return fut

    def prewarm(self, personas: list[Persona]) -> Future:
        """Prefill these personas' blocks into the shared persona KV cache when idle (as many as it holds)."""

        def queue_them() -> int:
            self._to_warm.extend(personas[: self.model.persona_kv_entries])
            return len(self._to_warm)

        return self.call(queue_them)

    @property
    def warming(self) -> int:
        """Persona blocks still to prefill (scheduler thread)."""
        return len(self._to_warm) + (self._warming is not None)

    def submit(self, job: ChatJob) -> Future:
        """Queue a turn; the future fails at once for an unknown session or a full queue."""
        return self.call(lambda: self._accept(job))

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._inbox.put(None)
        self._thread.join(timeout)

    # ---- sessions (scheduler thread only) ------------------------------------------------------------------
    def session(self, session_id: str) -> LiveSession:
        live = self.live.get(session_id)
        if live is None:
            stored = self.store.load(session_id)
            if stored is None:
                raise SessionNotFoundError(f"session_id: no session {session_id!r}")
            live = LiveSession(
                stored.id,
                stored.persona,
                stored.created_ms,
                Conversation(self.model, stored.persona, self.model.usable_history(stored.turns)),
            )
            self.live[session_id] = live
            self._trim_live()
        self.live.move_to_end(session_id)
        return live

    def forget(self, session_id: str) -> None:
        """Drop a session's live state (after delete); refused while it has a turn in flight."""
        live = self.live.get(session_id)
        if live is not None:
            if live.busy:
                raise SessionBusyError(f"session_id: {session_id!r} has a turn in flight")
            live.conversation.close()
            del self.live[session_id]

    def refresh(self, session_id: str) -> None:
        """Drop an idle live copy that no longer matches the store (another replica added turns, or the session
        was deleted and made again); the next use reloads it."""
        live = self.live.get(session_id)
        if live is None or live.busy:
            return
        if self.store.version(session_id) != (live.created_ms, len(live.conversation.history)):
            live.conversation.close()
            del self.live[session_id]

    def prepare(self, session_id: str) -> None:
        """A new session: load it and encode its persona's role vector now rather than in its first turn."""
        live = self.session(session_id)
        self.model.encode_role(live.persona)

    def _trim_live(self) -> None:
        for sid in list(self.live):
            if len(self.live) <= self.max_live:
                break
            if not self.live[sid].busy:
                self.live.pop(sid).conversation.close()

    def _make_room(self, conv: Conversation) -> bool:
        """Ensure `conv` can attach to a slot, parking the least recently used idle session if needed."""
        if conv.slot is not None or self.model.free_slots:
            return True
        for live in self.live.values():  # least recently used first
            if not live.busy and live.conversation.slot is not None:
                live.conversation.park()
                self._enforce_kv_budget()
                return True
        return False  # every slot is decoding

    def _enforce_kv_budget(self) -> None:
        total = sum(s.conversation.kv_bytes for s in self.live.values())
        for live in self.live.values():
            if total <= self.kv_budget_bytes:
                break
            if live.conversation.parked is not None:
                total -= live.conversation.kv_bytes
                live.conversation.drop_kv()

    @property
    def kv_parked_bytes(self) -> int:
        return sum(s.conversation.kv_bytes for s in self.live.values())

    # ---- turns -------------------------------------------------------------------------------------------
    def _accept(self, job: ChatJob) -> None:
        if self.shared_store:
            self.refresh(job.session_id)
        live = self.session(job.session_id)
        if live.queued >= MAX_QUEUED_PER_SESSION:
            raise LimitExceededError(
                f"session_id: {job.session_id!r} has {live.queued} turns in flight; wait for their done events"
            )
        if len(self.waiting) >= self.max_queued:
            raise LimitExceededError(f"{self.max_queued} turns are already waiting; try again shortly")
        live.queued += 1
        self.waiting.append(job)

    def _admit(self) -> None:
        """Start waiting turns in arrival order; a session's turns run one after another."""
        for job in list(self.waiting):
            live = self.session(job.session_id)
            if job.cancelled.is_set():
                self.waiting.remove(job)
                live.queued -= 1
                continue
            if live.running:
                continue  # its earlier turn is still decoding: this one follows it
            if job.turn_id and self._replayed(job, live):
                continue
            conv = live.conversation
            if not self._make_room(conv):
                return  # every slot is decoding: wait for one to finish
            self.waiting.remove(job)
            live.running = True
            turn: PreparedTurn | None = None
            try:
                config = job.config(live.persona) if callable(job.config) else job.config
                turn = conv.prepare(
                    job.text,
                    screenshot=job.screenshot,
                    scene=job.scene,
                    config=config,
                    started=job.submitted,
                    state=job.state,
                )
                assert conv.slot is not None
                events = self.batch.add(conv.slot, turn.embeds, turn.state)
            except (
                BaseException
            ) as exc:  # bad input found late, or the runtime failed: the turn leaves no trace
                if turn is not None:
                    conv.finish(turn, None)
                live.turn_ended()
                job.emit(exc)
                continue
            self.running[conv.slot] = _Running(job, live, turn)
            if turn.action is not None:
                job.emit(turn.action)  # before the first delta: the game can start the animation now
            self._deliver(conv.slot, events)

    def _replayed(self, job: ChatJob, live: LiveSession) -> bool:
        """A turn_id already committed (a retry that reached another front door, or raced this one's check):
        the stored reply is sent again instead of a second turn being made. Runs in turn order for the session,
        so a duplicate that waited behind the original sees it committed."""
        stored = self.store.find_turn(job.session_id, job.turn_id)
        if stored is None:
            return False
        self.waiting.remove(job)
        live.queued -= 1
        user, reply = stored
        if user != job.text:
            job.emit(
                InvalidInputError("turn_id", f"{job.turn_id!r} was used for another line in this session")
            )
            return True
        job.emit(Delta(reply, reply))
        job.emit(
            Done(
                reply,
                "stop",
                Usage(0, 0),
                Timings(0.0, 0.0, 0.0),
                emotion=self.model.emotion(reply, user),
                replayed=True,
            )
        )
        return True

    def _deliver(self, slot: int, events: list[ReplyEvent]) -> None:
        run = self.running[slot]
        for event in events:
            if isinstance(event, Done):
                self._complete(slot, event)
                return
            run.job.emit(event)

    def _complete(self, slot: int, done: Done) -> None:
        run = self.running.pop(slot)
        conv = run.session.conversation
        try:
            done = conv.with_emotion(run.turn, done)
        except Exception:  # noqa: BLE001 - an emotion is a nicety; the reply itself must still land
            log.exception("emotion classification failed")
        try:
            # durable before the client hears "done": a crash after this line never loses the turn
            self.store.append_turn(
                run.session.id,
                len(conv.history),
                Turn(run.turn.text, done.text, run.turn.prefix, run.turn.context),
                run.job.turn_id,
            )
        except BaseException as exc:
            conv.finish(run.turn, None)
            run.session.turn_ended()
            run.job.emit(NpcError(f"the turn could not be stored: {exc}"))
            return
        conv.finish(run.turn, done)
        run.session.turn_ended()
        u, t = done.usage, done.timings
        log.info(
            "turn session=%s prompt=%d cached=%d completion=%d ttft_ms=%.0f tok_s=%.1f finish=%s",
            run.session.id,
            u.prompt_tokens,
            u.cached_tokens,
            u.completion_tokens,
            t.ttft_ms,
            t.decode_tokens_per_second,
            done.finish_reason,
        )
        run.job.emit(done)

    def _drop_cancelled(self) -> None:
        for slot, run in list(self.running.items()):
            if run.job.cancelled.is_set():
                self.batch.cancel(slot)
                self.running.pop(slot)
                run.session.conversation.finish(run.turn, None)
                run.session.turn_ended()
                log.info("turn session=%s cancelled by the client", run.session.id)

    def _loop(self) -> None:
        while not self._stop.is_set():
            idle = not self.running and not self.waiting
            try:
                item = self._inbox.get(timeout=0.05) if idle else self._inbox.get_nowait()
            except queue.Empty:
                item = ...
            while item is not ...:
                if item is None:
                    break
                fn, fut = item
                try:
                    fut.set_result(fn())
                except BaseException as exc:
                    fut.set_exception(exc)
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    item = ...
            self._drop_cancelled()
            self._admit()
            if not self.running:
                self._warm_step()
            if self.running:
                try:
                    for slot, events in self.batch.step().items():
                        self._deliver(slot, events)
                except BaseException as exc:  # a failed step ends every running turn, none is stored
                    log.exception("decode step failed")
                    for slot, run in list(self.running.items()):
                        self.batch.cancel(slot)
                        run.session.conversation.finish(run.turn, None)
                        run.session.turn_ended()
                        run.job.emit(exc)
                    self.running.clear()
        self._shutdown()

    WARM_CHUNK = 256  # positions prefilled per idle loop iteration: a turn arriving waits at most one chunk

    def _warm_step(self) -> None:
        """One chunk of a persona block's prefill; given up (the slot freed) as soon as turns are waiting."""
        model = self.model
        if self._warming is not None and self.waiting:
            persona, _, slot, _ = self._warming
            model.release_slot(slot)
            self._to_warm.append(persona)  # again later
            self._warming = None
            return
        if self._warming is None:
            if not self._to_warm or self.waiting or model.free_slots == 0:
                return
            persona = self._to_warm.popleft()
            block = model.persona_block(persona)
            if model.cached_persona_kv(block) is not None:
                return
            self._warming = (persona, block, model.acquire_slot(), 0)
        persona, block, slot, done = self._warming
        try:
            chunk = block[done : done + self.WARM_CHUNK]
            SlotSource(model, slot).prefill(model.embed_ids(chunk))
        except BaseException:  # a warm-up is an optimisation: never let it take the server down
            log.exception("persona warm-up failed")
            model.release_slot(slot)
            self._warming = None
            return
        done += len(chunk)
        if done < len(block):
            self._warming = (persona, block, slot, done)
            return
        model.remember_persona_kv(block, slot)
        model.release_slot(slot)
        self._warming = None
        log.info("persona %s warmed: %d positions of KV ready", persona.id or persona.name, len(block))

    def _shutdown(self) -> None:
        for slot, run in list(self.running.items()):
            self.batch.cancel(slot)
            run.session.conversation.finish(run.turn, None)
            run.session.turn_ended()
            run.job.emit(UnavailableError("the server is shutting down; the turn was not stored"))
        self.running.clear()
        while self.waiting:
            job = self.waiting.popleft()
            job.emit(UnavailableError("the server is shutting down; the turn was not stored"))
