"""The scene methods of npc.v1.NpcService: CreateScene, GetScene, DeleteScene, SceneChat and Converse.

A mixin of NpcServicer (service.py). Each NPC line in a scene is an ordinary turn of that NPC's session, run by the
same backend as Chat (so its KV state, actions, emotion, limits and store are Chat's): its player line is what the
NPC heard since it last spoke (scene_rules.py). The scene itself (members, what each heard) is stored after every
line, so a restarted server carries on where it was.

One line at a time per scene. A SceneChat or DeleteScene that arrives while Converse streams interrupts it: the line
being said is cancelled and stores nothing (its speaker keeps what it heard, to answer later), or, between two lines,
the next one is not started; the lines already said stay, and Converse ends with an `interrupted` event.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from .._proto.npc.v1 import npc_pb2 as pb
from ..errors import InvalidInputError, NpcError, SessionNotFoundError
from ..personas.persona import Persona
from ..personas.prompt import check_text
from ..runtime.events import Done
from ..wire import check_session_id, event_to_proto
from .api_keys import ApiKey
from .backend import ServedBy, TurnBackend, job_from_request
from .config import ServerConfig
from .pump import EventPump
from .scene_rules import (
    NARRATOR,
    PLAYER,
    SceneState,
    check_members,
    check_speaker,
    choose_speaker,
    said,
    spoken,
)
from .store import SessionStore
from .store.base import now_ms

log = logging.getLogger("npc_sdk.server")
MAX_CONVERSE_TURNS = 16


class SceneInterrupted(NpcError):
    """Ends the line being said in a scene: the player or the game spoke, or the scene was deleted."""


class _Stage:
    """The per-process side of one scene: its lock, and how to interrupt the line being said."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.pump: EventPump | None = None  # the line being said now
        self.interrupted = False
        self.personas: dict[str, Persona] = {}  # member session id -> its persona snapshot

    def interrupt(self) -> None:
        self.interrupted = True
        if self.pump is not None and not self.pump.ended:
            self.pump.cancelled.set()  # the scheduler drops the turn within a step, storing nothing
            self.pump.emit(SceneInterrupted("interrupted"))


class SceneMethods:
    backend: TurnBackend
    store: SessionStore
    config: ServerConfig

    if TYPE_CHECKING:  # NpcServicer's

        def caller(self, context) -> ApiKey | None: ...
        def check_owner(self, session_id: str, key: ApiKey | None) -> None: ...
        async def _run(self, fn): ...
        async def _fail(self, context, exc: BaseException) -> None: ...

    @cached_property
    def _stages(self) -> dict[str, _Stage]:
        """Scene id -> its lock and the line being said, in this process."""
        return {}

    @cached_property
    def _role_vectors(self) -> dict[str, np.ndarray]:
        """Role text -> its sentence vector, for choosing who speaks (one per persona)."""
        return {}

    def _stage(self, scene_id: str) -> _Stage:
        return self._stages.setdefault(scene_id, _Stage())

    async def _load_scene(self, scene_id: str, key: ApiKey | None) -> SceneState:
        check_session_id(scene_id, "scene_id")
        scene = await self._run(lambda: self.store.load_scene(scene_id))
        if scene is None or (key is not None and scene.owner != key.name):
            raise SessionNotFoundError(f"scene_id: no scene {scene_id!r}")
        return scene

    # ---- create, get, delete -----------------------------------------------------------------------------
    async def CreateScene(self, request: pb.CreateSceneRequest, context) -> pb.Scene:
        try:
            members = check_members([check_session_id(s, "session_ids") for s in request.session_ids])
            scene_id = (
                check_session_id(request.scene_id, "scene_id") if request.scene_id else secrets.token_hex(8)
            )
            key = self.caller(context)

            def create() -> SceneState:
                names = {}
                for sid in members:
                    self.check_owner(sid, key)
                    stored = self.store.load(sid)
                    if stored is None:
                        raise SessionNotFoundError(f"session_ids: no session {sid!r}")
                    names[sid] = stored.persona.name
                scene = SceneState(
                    scene_id, members, names, created_ms=now_ms(), owner=key.name if key else ""
                )
                self.store.create_scene(scene)
                return scene

            return _scene_to_proto(await self._run(create))
        except NpcError as exc:
            await self._fail(context, exc)

    async def GetScene(self, request: pb.GetSceneRequest, context) -> pb.Scene:
        try:
            return _scene_to_proto(await self._load_scene(request.scene_id, self.caller(context)))
        except NpcError as exc:
            await self._fail(context, exc)

    async def DeleteScene(self, request: pb.DeleteSceneRequest, context) -> pb.DeleteSceneResponse:
        try:
            scene = await self._load_scene(request.scene_id, self.caller(context))
            stage = self._stage(scene.id)
            stage.interrupt()
            async with stage.lock:
                await self._run(lambda: self.store.delete_scene(scene.id))
            self._stages.pop(scene.id, None)
            return pb.DeleteSceneResponse()
        except NpcError as exc:
            await self._fail(context, exc)

    # ---- lines -------------------------------------------------------------------------------------------
    async def SceneChat(self, request: pb.SceneChatRequest, context) -> AsyncIterator[pb.SceneEvent]:
        try:
            text = check_text(request.text)
            speaker = check_speaker(request.speaker)
            if request.responder_session_id:
                check_session_id(request.responder_session_id, "responder_session_id")
            key = self.caller(context)
            scene = await self._load_scene(request.scene_id, key)
            stage = self._stage(scene.id)
            stage.interrupt()  # the player or the game cuts in: NPC talk in flight stops
            async with stage.lock:
                stage.interrupted = False
                scene = await self._load_scene(request.scene_id, key)  # as the interrupted talk left it
                scene.hear(said(speaker, text))
                scene.last_speaker = ""
                await self._run(lambda: self.store.save_scene(scene))
                if request.no_reply:
                    return
                responder = await self._choose(scene, text, game_named=request.responder_session_id)
                async for event in self._line(scene, stage, responder, request):
                    yield event
        except NpcError as exc:
            await self._fail(context, exc)

    async def Converse(self, request: pb.ConverseRequest, context) -> AsyncIterator[pb.SceneEvent]:
        try:
            turns = request.turns or 4
            if not 1 <= turns <= MAX_CONVERSE_TURNS:
                raise InvalidInputError("turns", f"must be in [1, {MAX_CONVERSE_TURNS}], got {turns}")
            if request.topic:
                check_text(request.topic, "topic")
            key = self.caller(context)
            scene = await self._load_scene(request.scene_id, key)
            stage = self._stage(scene.id)
            async with stage.lock:
                stage.interrupted = False
                scene = await self._load_scene(request.scene_id, key)
                if request.topic:
                    scene.hear(said(NARRATOR, request.topic))
                    await self._run(lambda: self.store.save_scene(scene))
                last_line = request.topic
                for _ in range(turns):
                    if stage.interrupted:
                        break
                    speaker = await self._choose(
                        scene, last_line, said_by=scene.last_speaker, not_again=scene.last_speaker
                    )
                    if not scene.heard.get(speaker):  # nothing said to it yet: it opens the talk
                        others = [scene.names[s] for s in scene.members if s != speaker]
                        scene.heard[speaker] = [said(NARRATOR, f"{' and '.join(others)} are here with you.")]
                    async for event in self._line(scene, stage, speaker, request):
                        if event.event.HasField("done"):
                            last_line = event.event.done.text
                        yield event
                if stage.interrupted:
                    yield pb.SceneEvent(interrupted=True)
        except SceneInterrupted:
            yield pb.SceneEvent(interrupted=True)
        except NpcError as exc:
            await self._fail(context, exc)

    async def _choose(
        self, scene: SceneState, line: str, *, said_by: str = "", game_named: str = "", not_again: str = ""
    ) -> str:
        personas = await self._run(lambda: self._member_personas(scene))
        roles = self._role_vectors
        unknown = [p.role_text() for p in personas.values() if p.role_text() not in roles]
        vectors = await self.backend.scene_vectors([line or ".", *unknown])
        if vectors is not None:
            roles.update(zip(unknown, vectors[1:], strict=True))
        return choose_speaker(
            line,
            scene,
            vectors[0] if vectors is not None else np.zeros(1),
            {sid: roles.get(p.role_text(), np.zeros(1)) for sid, p in personas.items()},
            {sid: p.talkativeness for sid, p in personas.items()},
            said_by=said_by,
            game_named=game_named,
            not_again=not_again,
        )

    def _member_personas(self, scene: SceneState) -> dict[str, Persona]:
        """The members' persona snapshots (they never change: kept once read); a deleted member is an error."""
        known = self._stage(scene.id).personas
        for sid in scene.members:
            if sid in known and self.store.exists(sid):
                continue
            stored = self.store.load(sid)
            if stored is None:
                raise SessionNotFoundError(f"scene_id: its session {sid!r} was deleted")
            known[sid] = stored.persona
        return {sid: known[sid] for sid in scene.members}

    async def _line(
        self,
        scene: SceneState,
        stage: _Stage,
        speaker: str,
        request: pb.SceneChatRequest | pb.ConverseRequest,
    ) -> AsyncIterator[pb.SceneEvent]:
        """One NPC says its line: a turn of its session on what it heard; every other member hears the reply."""
        heard = list(scene.heard.get(speaker, []))
        probe = SceneState(scene.id, [speaker], scene.names, {speaker: heard})
        chat = pb.ChatRequest(
            session_id=speaker,
            text=probe.take_heard(speaker),
            screenshot=request.screenshot if request.HasField("screenshot") else None,
            generation=request.generation,
            scene=request.scene,
            state=request.state,
        )
        before = await self._run(lambda: self.store.version(speaker))
        name = scene.names[speaker]
        done: Done | None = None
        async with EventPump() as pump:
            job = job_from_request(chat, self.config.defaults, pump.emit, pump.cancelled)
            job.heard = [spoken(line) for line in heard if not line.startswith(f"{PLAYER}: ")]
            stage.pump = pump
            try:
                if stage.interrupted:  # cut in before this line started (while the speaker was chosen): not said
                    return
                await self.backend.start_turn(chat, job)
                async for event in pump.events():
                    if isinstance(event, SceneInterrupted):
                        break
                    if isinstance(event, BaseException):
                        raise event
                    if isinstance(event, ServedBy):
                        continue
                    if isinstance(event, Done):
                        done = event
                    yield pb.SceneEvent(session_id=speaker, speaker=name, event=event_to_proto(event))
            finally:
                stage.pump = None
        if done is None:  # interrupted: unless the turn was stored in the same instant, nothing was said
            after = await self._run(lambda: self.store.version(speaker))
            if after == before:
                return
            stored = await self._run(lambda: self.store.load(speaker))
            assert stored is not None
            reply = stored.turns[-1].reply
        else:
            reply = done.text
        scene.heard.pop(speaker, None)
        scene.hear(said(name, reply), said_by=speaker)
        scene.last_speaker = speaker
        await self._run(lambda: self.store.save_scene(scene))


def _scene_to_proto(scene: SceneState) -> pb.Scene:
    return pb.Scene(
        scene_id=scene.id,
        created_unix_ms=scene.created_ms,
        members=[
            pb.SceneMember(session_id=sid, name=scene.names[sid], lines_heard=len(scene.heard.get(sid, [])))
            for sid in scene.members
        ],
    )
