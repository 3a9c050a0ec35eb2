"""Scheduler: the one thread that owns the model, the live sessions and the batch; the local `TurnBackend`.

Everything that touches the decoder runs here, so there are no locks around the cache: RPC handlers send
commands (`call`) and chat jobs (`submit`) and wait for their answers. Each loop admits waiting turns into free
cache slots (prefilling them), drops cancelled ones, and advances every running reply by one token in a single
onnxruntime call. A finished turn is committed to the store before its Done event is handed to the RPC.

Which sessions stay live and where their KV state is kept is `residency.Residency`'s job; idle-time persona
prefills are `warmup.PersonaWarmer`'s; a turn_id already committed is answered by `replay`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from .._proto.npc.v1 import npc_pb2 as pb
from ..errors import InvalidInputError, LimitExceededError, NpcError, UnavailableError
from ..personas.persona import Persona
from ..personas.prompt import Turn
from ..runtime.batch import BatchGenerator
from ..runtime.events import Done, Emotion, ReplyEvent
from ..runtime.memory import exchange_text
from ..runtime.onnx_model import OnnxNpcModel
from ..runtime.turn import PreparedTurn
from ..wire import image_from_proto
from .backend import ChatJob
from .replay import replay_events, stored_reply
from .residency import LiveSession, Residency
from .store import SessionStore
from .warmup import PersonaWarmer

log = logging.getLogger("npc_sdk.server")
MAX_QUEUED_PER_SESSION = 4  # a session's turns waiting or running; more are RESOURCE_EXHAUSTED
# A best-of-N reply is whole once the critic has chosen it. It is still handed out one token at a time, a step apart
# (about the decode rate of one reply on two cores), and stored only after its last token: so a game sees it stream,
# and a cancel or a crash while it streams leaves no turn behind, exactly as for a reply of one candidate.
PACED_DELTA_S = 0.01
T = TypeVar("T")


@dataclass
class _Running:
    job: ChatJob
    session: LiveSession
    turn: PreparedTurn
    paced: deque[ReplyEvent] = field(default_factory=deque)  # a chosen best-of-N reply's events, not yet out
    persona_shared: bool = False  # its persona block's KV is in the shared cache (Conversation.share_persona_kv)


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
        self.max_queued = max_queued  # turns waiting for a slot; more are refused
        self.residency = Residency(model, store, kv_budget_bytes=kv_budget_bytes, max_live=max_live)
        self.warmer = PersonaWarmer(model)
        self.batch = BatchGenerator(model)
        self._started_this_step = False  # a turn was prepared since the last decode step
        self.running: dict[int, _Running] = {}  # slot -> turn
        self.waiting: deque[ChatJob] = deque()
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="npc-scheduler", daemon=True)

    # ---- the RPC side (TurnBackend) ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def call(self, fn: Callable[[], T]) -> Future[T]:
        """Run `fn` on the scheduler thread; the future holds its result or exception."""
        fut: Future[T] = Future()
        self._inbox.put((fn, fut))
        return fut

    def prewarm(self, personas: Sequence[Persona]) -> Future[int]:
        """Prefill these personas' blocks into the shared persona KV cache when idle (as many as it holds)."""
        return self.call(lambda: self.warmer.queue(personas))

    def submit(self, job: ChatJob) -> Future[None]:
        """Queue a turn; the future fails at once for an unknown session or a full queue."""
        return self.call(lambda: self._accept(job))

    async def start_turn(self, request: pb.ChatRequest, job: ChatJob) -> None:
        if request.HasField("screenshot"):
            # decoding a large PNG takes tens of ms: not on the event loop, nor on the scheduler thread where it
            # would stall every running reply
            job.screenshot = await asyncio.to_thread(image_from_proto, request.screenshot)
        await asyncio.wrap_future(self.submit(job))

    async def emotion(self, reply: str, line: str) -> Emotion:
        return await asyncio.wrap_future(self.call(lambda: self.model.emotion(reply, line)))

    async def scene_vectors(self, texts: Sequence[str]) -> np.ndarray | None:
        return await asyncio.wrap_future(self.call(lambda: self.model.sentence_vectors(list(texts))))

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._inbox.put(None)
        self._thread.join(timeout)

    # ---- sessions (scheduler thread only) ------------------------------------------------------------------
    @property
    def live(self) -> OrderedDict[str, LiveSession]:
        return self.residency.live

    @property
    def kv_parked_bytes(self) -> int:
        return self.residency.kv_parked_bytes

    @property
    def warming(self) -> int:
        """Persona blocks still to prefill."""
        return self.warmer.pending

    def forget(self, session_id: str) -> None:
        """Drop a session's live state (after delete); refused while it has a turn in flight."""
        self.residency.forget(session_id)

    def prepare(self, session_id: str) -> None:
        """A new session: load it and encode its persona's role vector now rather than in its first turn."""
        live = self.residency.session(session_id)
        self.model.encode_role(live.persona)

    # ---- turns -------------------------------------------------------------------------------------------
    def _accept(self, job: ChatJob) -> None:
        if self.shared_store:
            self.residency.refresh(job.session_id)
        live = self.residency.session(job.session_id)
        if live.queued >= MAX_QUEUED_PER_SESSION:
            raise LimitExceededError(
                f"session_id: {job.session_id!r} has {live.queued} turns in flight; wait for their done events"
            )
        if len(self.waiting) >= self.max_queued:
            raise LimitExceededError(f"{self.max_queued} turns are already waiting; try again shortly")
        live.queued += 1
        self.waiting.append(job)

    def _admit(self) -> None:
        """Start waiting turns in arrival order; a session's turns run one after another.

        While replies are decoding, one turn starts per step: a turn's preparation (encoders, fusion, sampler:
        ~50 ms on two cores) runs on this thread, so starting a burst of eight at once would stop every talking
        NPC's stream for all eight."""
        for job in list(self.waiting):
            if self.batch.active and self._started_this_step:
                return
            live = self.residency.session(job.session_id)
            if job.cancelled.is_set():
                self._dequeue(job, live)
                continue
            if live.running:
                continue  # its earlier turn is still decoding: this one follows it
            if job.turn_id and self._replayed(job, live):
                continue
            if self._block_in_flight(live):
                continue
            if not self.residency.make_room(live.conversation):
                return  # every slot is decoding: wait for one to finish
            self.waiting.remove(job)
            live.running = True
            self._started_this_step = True
            self._start(job, live)

    def _start(self, job: ChatJob, live: LiveSession) -> None:
        """Prepare and prefill one turn; it decodes from the next step on."""
        conv = live.conversation
        turn: PreparedTurn | None = None
        try:
            config = job.config(live.persona) if callable(job.config) else job.config
            self.residency.memories.refresh(live.persona, live.memory)
            turn = conv.prepare(
                job.text,
                screenshot=job.screenshot,
                scene=job.scene,
                config=config,
                started=job.submitted,
                state=job.state,
                explain=job.explain,
                heard=job.heard,
            )
            assert conv.slot is not None
            if turn.extra_states:
                self.residency.spare_slots(len(turn.extra_states))
            events = self.batch.add(
                conv.slot, turn.embeds, turn.state, candidates=turn.extra_states, pick=turn.pick
            )
        except BaseException as exc:  # bad input found late, or the runtime failed: the turn leaves no trace
            self._abort(job, live, turn, exc)
            return
        self.running[conv.slot] = _Running(job, live, turn)
        self._share_persona_kv(conv.slot)
        if turn.action is not None:
            job.emit(turn.action)  # before the first delta: the game can start the animation now
        self._deliver(conv.slot, events)

    def _share_persona_kv(self, slot: int) -> None:
        """Once a turn's slot holds its persona block, other sessions of that persona start from it: a burst of
        first turns for one card (eight guards, one shopkeeper many players talk to) prefills the block once, not
        once a session (`_admit` holds their turns back meanwhile). Conversation.finish would share it too, but
        only after the whole reply."""
        run = self.running[slot]
        if run.persona_shared:
            return
        try:
            run.persona_shared = run.session.conversation.share_persona_kv()
        except Exception:  # noqa: BLE001 - sharing only saves others work: this turn goes on, nobody waits for it
            log.exception("persona KV could not be shared")
            run.persona_shared = True  # not tried again

    def _block_in_flight(self, live: LiveSession) -> bool:
        """A fresh slot's turn whose persona block another session's turn is prefilling right now: it starts once
        that block is shared, from it, instead of prefilling the same positions beside it."""
        if live.conversation.fed.length:
            return False  # its slot already holds its own dialogue, persona block included
        return any(
            not run.persona_shared and run.session.persona == live.persona for run in self.running.values()
        )

    def _replayed(self, job: ChatJob, live: LiveSession) -> bool:
        """A turn_id already committed (a retry that reached another front door, or raced this one's check):
        the stored reply is sent again instead of a second turn being made. Runs in turn order for the session,
        so a duplicate that waited behind the original sees it committed."""
        try:
            reply = stored_reply(self.store, job.session_id, job.turn_id, job.text)
        except InvalidInputError as exc:  # the turn_id was used for another line
            self._dequeue(job, live)
            job.emit(exc)
            return True
        if reply is None:
            return False
        self._dequeue(job, live)
        for event in replay_events(reply, self.model.emotion(reply, job.text)):
            job.emit(event)
        return True

    def _dequeue(self, job: ChatJob, live: LiveSession) -> None:
        """`job` leaves the queue without running (cancelled before it started, or replayed)."""
        self.waiting.remove(job)
        live.queued -= 1

    def _deliver(self, slot: int, events: list[ReplyEvent]) -> None:
        run = self.running[slot]
        if run.turn.extra_states:  # best of N: what all candidates agree on, then the chosen rest; a token a step
            run.paced.extend(events)
            self._pace(slot)
            return
        for event in events:
            if isinstance(event, Done):
                self._complete(slot, event)
                return
            run.job.emit(event)

    def _pace(self, slot: int) -> None:
        """Hand out the next held event of a best-of-N reply; its Done (the commit) once every delta is out."""
        run = self.running[slot]
        if run.paced:
            event = run.paced.popleft()
            if isinstance(event, Done):
                self._complete(slot, event)
            else:
                run.job.emit(event)

    def _only_pacing(self) -> bool:
        return not self.batch.active and all(run.paced for run in self.running.values())

    def _complete(self, slot: int, done: Done) -> None:
        run = self.running.pop(slot)
        conv = run.session.conversation
        try:
            done = conv.annotate(run.turn, done)
        except Exception:  # noqa: BLE001 - an emotion is a nicety; the reply itself must still land
            log.exception("emotion classification failed")
        turn = Turn(run.turn.text, done.text, run.turn.prefix, run.turn.context)
        try:
            # stored with the turn, so a reloaded session recalls it without encoding its whole history again
            vector = self.model.sentence_vectors([exchange_text(turn)])[0]
            # durable before the client hears "done": a crash after this line never loses the turn
            self.store.append_turn(run.session.id, len(conv.history), turn, run.job.turn_id, vector)
        except BaseException as exc:
            self._abort(run.job, run.session, run.turn, NpcError(f"the turn could not be stored: {exc}"))
            return
        try:
            self.residency.memories.keep_facts(run.session.persona, run.session.memory, run.turn.text)
        except Exception:  # noqa: BLE001 - the turn is stored; a fact not kept must not take the reply with it
            log.exception("the player's facts could not be stored")
        conv.finish(run.turn, done)
        assert conv.recall is not None
        conv.recall.append(conv.history, vector)
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
        try:
            # while the player reads the reply: the next turn's first token then waits only for its own line
            conv.open_next_turn()
        except Exception:  # noqa: BLE001 - the turn is stored and sent; the next one would simply feed these
            log.exception("the next turn's opening could not be fed")

    def _abort(
        self, job: ChatJob, live: LiveSession, turn: PreparedTurn | None, error: BaseException | None
    ) -> None:
        """End a turn that will not be stored: out of the batch, no trace in its conversation, its session free
        for the next turn, and its client told why (`error` None: the client went away, nobody to tell)."""
        conv = live.conversation
        if conv.slot is not None:
            self.batch.cancel(conv.slot)
        if turn is not None:
            conv.finish(turn, None)
        live.turn_ended()
        if error is not None:
            job.emit(error)

    def _drop_cancelled(self) -> None:
        for slot, run in list(self.running.items()):
            if run.job.cancelled.is_set():
                self.running.pop(slot)
                self._abort(run.job, run.session, run.turn, None)
                log.info("turn session=%s cancelled by the client", run.session.id)

    def _abort_running(self, error: BaseException) -> None:
        for run in self.running.values():
            self._abort(run.job, run.session, run.turn, error)
        self.running.clear()

    # ---- the thread --------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.running and self._only_pacing():  # nothing to decode: wait a step's time between tokens
                self._run_commands(wait=True, timeout=PACED_DELTA_S)
            else:
                self._run_commands(wait=not self.running and not self.waiting)
            self._drop_cancelled()
            self._started_this_step = False
            self._admit()
            if not self.running:
                self.warmer.step(turns_waiting=bool(self.waiting))
            if self.running:
                try:
                    for slot, events in self.batch.step().items():
                        self._deliver(slot, events)
                    for slot in [s for s, run in self.running.items() if not run.persona_shared]:
                        self._share_persona_kv(slot)
                    for slot in [s for s, run in self.running.items() if run.paced]:
                        self._pace(slot)
                except BaseException as exc:  # a failed step ends every running turn, none is stored
                    log.exception("decode step failed")
                    self._abort_running(exc)
        self._shutdown()

    def _run_commands(self, *, wait: bool, timeout: float = 0.05) -> None:
        """Run every command in the inbox; when idle, wait a little for the first one."""
        try:
            item = self._inbox.get(timeout=timeout) if wait else self._inbox.get_nowait()
        except queue.Empty:
            return
        while item is not None:  # None: stop() woke the loop
            fn, fut = item
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _shutdown(self) -> None:
        self._abort_running(UnavailableError("the server is shutting down; the turn was not stored"))
        while self.waiting:
            job = self.waiting.popleft()
            job.emit(UnavailableError("the server is shutting down; the turn was not stored"))
