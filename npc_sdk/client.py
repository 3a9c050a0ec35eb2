"""Client and AsyncClient: the Python side of npc.v1.NpcService, used by the CLI, the tests and the samples.

Chat streams are context managers (sync and async twins): leaving the block early cancels the call on the
server, which stops that reply within a decode step and does not store it.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from PIL import Image

from ._proto.npc.v1 import npc_pb2 as pb
from ._proto.npc.v1 import npc_pb2_grpc as pb_grpc
from .errors import NpcError
from .personas.persona import Persona
from .runtime.events import Action, Delta, Done, ReplyEvent
from .wire import event_from_proto, persona_to_proto, scene_to_proto

MAX_MESSAGE = 64 << 20


def image_message(image: Any) -> pb.Image:
    """A proto Image from a path, PNG/JPEG bytes, a PIL image or an HxWx{3,4} uint8 array (sent as PNG)."""
    if isinstance(image, pb.Image):
        return image
    if isinstance(image, (str, Path)):
        image = Path(image).read_bytes()
    if isinstance(image, (bytes, bytearray)):
        data = bytes(image)
        encoding = pb.Image.JPEG if data[:3] == b"\xff\xd8\xff" else pb.Image.PNG
        return pb.Image(data=data, encoding=encoding)
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buf = io.BytesIO()
    pil.save(buf, "PNG")
    return pb.Image(data=buf.getvalue(), encoding=pb.Image.PNG)


def generation_message(**options: Any) -> pb.GenerationConfig:
    stop = options.pop("stop", ())
    return pb.GenerationConfig(stop=list(stop), **{k: v for k, v in options.items() if v is not None})


def _persona(persona: Persona | dict[str, Any]) -> pb.Persona:
    return persona_to_proto(persona if isinstance(persona, Persona) else Persona.from_dict(persona))


def _metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


def _chat_request(
    session_id: str,
    text: str,
    screenshot: Any,
    scene: Sequence[Any],
    options: dict[str, Any],
    state: Mapping[str, str] | None = None,
    turn_id: str = "",
    explain: bool = False,
) -> pb.ChatRequest:
    return pb.ChatRequest(
        session_id=session_id,
        text=text,
        screenshot=image_message(screenshot) if screenshot is not None else None,
        generation=generation_message(**options),
        scene=[scene_to_proto(e) for e in scene],
        state=dict(state or {}),
        turn_id=turn_id,
        explain=explain,
    )


def _scene_chat_request(
    scene_id: str,
    text: str,
    speaker: str,
    responder: str,
    no_reply: bool,
    screenshot: Any,
    scene: Sequence[Any],
    state: Mapping[str, str] | None,
    generation: dict[str, Any],
) -> pb.SceneChatRequest:
    base = _chat_request("", text, screenshot, scene, generation, state)
    return pb.SceneChatRequest(
        scene_id=scene_id,
        text=text,
        speaker=speaker,
        responder_session_id=responder,
        no_reply=no_reply,
        screenshot=base.screenshot if screenshot is not None else None,
        scene=base.scene,
        state=base.state,
        generation=base.generation,
    )


def _converse_request(
    scene_id: str, turns: int, topic: str, screenshot: Any, generation: dict[str, Any]
) -> pb.ConverseRequest:
    return pb.ConverseRequest(
        scene_id=scene_id,
        turns=turns,
        topic=topic,
        screenshot=image_message(screenshot) if screenshot is not None else None,
        generation=generation_message(**generation),
    )


def _turn_id(turn_id: str | None, retry: RetryPolicy | None, generation: dict[str, Any]) -> str:
    """The turn id to send: with `retry`, one is made up when not given, and the seed is derived from it (unless
    given), so that a re-run after a crash says the same words as the attempt that was cut off."""
    if retry is None:
        return turn_id or ""
    turn_id = turn_id or uuid.uuid4().hex
    generation.setdefault("seed", int(uuid.UUID(hex=uuid.uuid5(uuid.NAMESPACE_OID, turn_id).hex)) % 2**63)
    return turn_id


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of a turn the server could not be reached for (UNAVAILABLE), with the same turn_id."""

    attempts: int = 4  # calls in all, the first included
    deadline_s: float = 60.0  # no new attempt starts after this long
    backoff_s: float = 0.25  # doubled after each attempt, at most 4 s


class RetriedTurnDiverged(NpcError):
    """A retried turn that was never stored came back with other words than those already streamed."""


class _Replies:
    """What a chat stream has yielded so far, across attempts: the text, the action and the done event.

    Each attempt's events go through `accept`, which returns what the caller should see: text already yielded is not
    yielded again, only what extends it is (RetriedTurnDiverged if a re-run says something else).
    """

    def __init__(self) -> None:
        self.text = ""
        self.done: Done | None = None
        self.action: Action | None = None
        self._streamed = ""  # this attempt's text

    def begin_attempt(self) -> None:
        self._streamed = ""

    def accept(self, msg: pb.ChatEvent) -> ReplyEvent | None:
        event = event_from_proto(msg, self._streamed)
        if isinstance(event, Done):
            self.done = event
            return event
        if isinstance(event, Action):
            if self.action is not None:
                return None
            self.action = event
            return event
        self._streamed = event.snapshot
        if len(self._streamed) <= len(self.text):
            if not self.text.startswith(self._streamed):
                raise RetriedTurnDiverged("the retried turn's reply differs from what was streamed")
            return None
        if not self._streamed.startswith(self.text):
            raise RetriedTurnDiverged("the retried turn's reply differs from what was streamed")
        new = self._streamed[len(self.text) :]
        self.text = self._streamed
        return Delta(new, self.text)


class _Backoff:
    """When a failed attempt may be made again (UNAVAILABLE, within the policy), and how long to wait first."""

    def __init__(self, retry: RetryPolicy | None, can_reissue: bool):
        self.retry = retry if can_reissue else None
        self.started = time.monotonic()
        self.wait = retry.backoff_s if retry else 0.0
        self.attempts = 1

    def next_wait(self, exc: grpc.RpcError) -> float | None:
        """Seconds to wait before the next attempt, or None: give up (raise `exc`)."""
        retry = self.retry
        if (
            retry is None
            or exc.code() != grpc.StatusCode.UNAVAILABLE
            or self.attempts >= retry.attempts
            or time.monotonic() - self.started + self.wait > retry.deadline_s
        ):
            return None
        wait = self.wait
        self.wait = min(4.0, self.wait * 2)
        self.attempts += 1
        return wait


class _Stream:
    """What the sync and async chat streams share: the call, its retries and what has been yielded so far."""

    def __init__(self, call: Any, reissue: Callable[[], Any] | None = None, retry: RetryPolicy | None = None):
        self._call = call
        self._reissue = reissue
        self._backoff = _Backoff(retry, reissue is not None)
        self._replies = _Replies()

    @property
    def text(self) -> str:
        """The reply so far."""
        return self._replies.text

    @property
    def done(self) -> Done | None:
        """The Done event, once the reply has ended."""
        return self._replies.done

    @property
    def action(self) -> Action | None:
        """The declared action the line asked for, if any."""
        return self._replies.action

    @property
    def attempts(self) -> int:
        """Calls made for this turn, the first included."""
        return self._backoff.attempts

    def _again(self, exc: grpc.RpcError) -> float:
        """Seconds to wait before reissuing the call after `exc`; raises it when the turn is not to be retried."""
        wait = self._backoff.next_wait(exc)
        if wait is None or self._reissue is None:
            raise exc
        return wait

    def close(self) -> None:
        self._call.cancel()


class ChatStream(_Stream):
    """Iterate for at most one Action, Delta events, then one Done; `close()` (or leaving the `with`) cancels.

    With a RetryPolicy (and so a turn_id), a stream cut by UNAVAILABLE is asked again: the server replays the
    turn if it was committed, or runs it again. Text already yielded is not yielded twice: only what extends it
    is (RetriedTurnDiverged if a re-run says something else; a seed, set by `chat` from the turn_id, prevents it).
    """

    def __iter__(self) -> Iterator[ReplyEvent]:
        while True:
            self._replies.begin_attempt()
            try:
                for msg in self._call:
                    event = self._replies.accept(msg)
                    if event is not None:
                        yield event
                return
            except grpc.RpcError as exc:
                time.sleep(self._again(exc))
                self._call = self._reissue()

    @property
    def replica(self) -> str:
        """Cluster mode: the replica that ran the turn (trailing metadata `npc-replica`); "" from a single server."""
        try:
            metadata = self._call.trailing_metadata() or ()
        except Exception:  # the call has not ended
            return ""
        return str(dict(metadata).get("npc-replica", ""))

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.done is None:
            self.close()


class AsyncChatStream(_Stream):
    """asyncio twin of ChatStream: `async for` the same events, with the same retries; `close()` (or leaving the
    `async with`) cancels."""

    _trailing: tuple[tuple[str, str], ...] = ()

    async def __aiter__(self) -> AsyncIterator[ReplyEvent]:
        while True:
            self._replies.begin_attempt()
            try:
                async for msg in self._call:
                    event = self._replies.accept(msg)
                    if event is not None:
                        yield event
                self._trailing = tuple(await self._call.trailing_metadata() or ())
                return
            except grpc.RpcError as exc:
                await asyncio.sleep(self._again(exc))
                self._call = self._reissue()

    @property
    def replica(self) -> str:
        """Cluster mode: the replica that ran the turn (trailing metadata `npc-replica`); "" from a single server,
        or before the stream has ended."""
        return str(dict(self._trailing).get("npc-replica", ""))

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.done is None:
            self.close()


def _channel_options() -> list[tuple[str, int]]:
    return [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)]


def _tls(tls_ca: str | Path | None) -> grpc.ChannelCredentials | None:
    """Credentials trusting `tls_ca` (a PEM file: the server's own certificate when it is self-signed)."""
    return grpc.ssl_channel_credentials(Path(tls_ca).read_bytes()) if tls_ca else None


class Client:
    """npc.v1.NpcService over a blocking gRPC channel; AsyncClient is its asyncio twin, method for method."""

    def __init__(
        self,
        address: str = "127.0.0.1:50051",
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        tls_ca: str | Path | None = None,
    ):
        creds = _tls(tls_ca)
        self.channel = (
            grpc.secure_channel(address, creds, options=_channel_options())
            if creds
            else grpc.insecure_channel(address, options=_channel_options())
        )
        self.stub = pb_grpc.NpcServiceStub(self.channel)
        self.metadata = _metadata(api_key)
        self.timeout = timeout

    def create_session(
        self, persona: Persona | dict[str, Any], session_id: str = "", player_id: str = ""
    ) -> pb.Session:
        request = pb.CreateSessionRequest(
            persona=_persona(persona), session_id=session_id, player_id=player_id
        )
        return self.stub.CreateSession(request, metadata=self.metadata, timeout=self.timeout)

    def create_session_from_file(
        self, persona_id: str, session_id: str = "", player_id: str = ""
    ) -> pb.Session:
        """A session with a persona the server loaded from its --personas folder."""
        request = pb.CreateSessionRequest(persona_id=persona_id, session_id=session_id, player_id=player_id)
        return self.stub.CreateSession(request, metadata=self.metadata, timeout=self.timeout)

    # ---- long-term memory (docs/memory.md) -------------------------------------------------------------------
    def add_memory(self, text: str, *, npc: str = "", group: str = "", player_id: str = "") -> pb.Memory:
        """Something an NPC (by persona name) or every NPC of a memory group knows, about a player or not."""
        memory = pb.Memory(text=text, npc=npc, group=group, player_id=player_id)
        return self.stub.AddMemory(memory, metadata=self.metadata, timeout=self.timeout)

    def list_memories(
        self, *, npc: str = "", group: str = "", player_id: str = "", limit: int = 100
    ) -> list[pb.Memory]:
        request = pb.ListMemoriesRequest(npc=npc, group=group, player_id=player_id, limit=limit)
        return list(self.stub.ListMemories(request, metadata=self.metadata, timeout=self.timeout).memories)

    def delete_memory(self, memory_id: str) -> None:
        self.stub.DeleteMemory(
            pb.DeleteMemoryRequest(id=memory_id), metadata=self.metadata, timeout=self.timeout
        )

    def forget_player(self, player_id: str) -> pb.ForgetPlayerResponse:
        """Delete the player's memories and sessions."""
        return self.stub.ForgetPlayer(
            pb.ForgetPlayerRequest(player_id=player_id), metadata=self.metadata, timeout=self.timeout
        )

    def get_session(self, session_id: str) -> pb.Session:
        return self.stub.GetSession(
            pb.GetSessionRequest(session_id=session_id), metadata=self.metadata, timeout=self.timeout
        )

    def list_sessions(self, page_size: int = 100, page_token: str = "") -> pb.ListSessionsResponse:
        return self.stub.ListSessions(
            pb.ListSessionsRequest(page_size=page_size, page_token=page_token),
            metadata=self.metadata,
            timeout=self.timeout,
        )

    def delete_session(self, session_id: str) -> None:
        self.stub.DeleteSession(
            pb.DeleteSessionRequest(session_id=session_id), metadata=self.metadata, timeout=self.timeout
        )

    def shutdown(self) -> int:
        """Stop the server gracefully (it needs an API key); returns the turns that were in flight."""
        return self.stub.Shutdown(
            pb.ShutdownRequest(), metadata=self.metadata, timeout=self.timeout
        ).turns_in_flight

    def export_session(self, session_id: str) -> pb.SessionSnapshot:
        return self.stub.ExportSession(
            pb.ExportSessionRequest(session_id=session_id), metadata=self.metadata, timeout=self.timeout
        )

    def import_session(self, snapshot: pb.SessionSnapshot) -> pb.Session:
        return self.stub.ImportSession(snapshot, metadata=self.metadata, timeout=self.timeout)

    def chat(
        self,
        session_id: str,
        text: str,
        *,
        screenshot: Any = None,
        scene: Sequence[Any] = (),
        state: Mapping[str, str] | None = None,
        timeout: float | None = None,
        turn_id: str | None = None,
        retry: RetryPolicy | None = None,
        explain: bool = False,
        **generation: Any,
    ) -> ChatStream:
        """Stream a reply. `scene`: what the game says is in view (SceneEntity, dicts of its fields, or tags).
        `state`: game facts ({"player_health": "low"}). `turn_id`: makes the turn idempotent (a retry gets the
        stored reply); with `retry`, one is made up when not given, and UNAVAILABLE is retried with it.
        `explain`: the Done carries `explanation` (why this reply: lore, notes, biased words, action decision).
        `generation`: max_tokens, temperature, top_p, top_k, repetition_penalty, seed, stop, scene_word_weight,
        absent_word_weight, candidates, max_sentences, max_clauses (README, Python API)."""
        turn_id = _turn_id(turn_id, retry, generation)
        request = _chat_request(session_id, text, screenshot, scene, generation, state, turn_id, explain)

        def call() -> Any:
            return self.stub.Chat(request, metadata=self.metadata, timeout=timeout or self.timeout)

        return ChatStream(call(), call, retry)

    def say(self, session_id: str, text: str, **kwargs: Any) -> Done:
        """The whole reply at once. Retried on UNAVAILABLE with the same turn_id unless `retry=None` is given."""
        kwargs.setdefault("retry", RetryPolicy())
        with self.chat(session_id, text, **kwargs) as stream:
            for _ in stream:
                pass
        assert stream.done is not None
        return stream.done

    # ---- scenes of several NPCs (docs/scenes.md) -----------------------------------------------------------
    def create_scene(self, session_ids: Sequence[str], scene_id: str = "") -> pb.Scene:
        request = pb.CreateSceneRequest(session_ids=list(session_ids), scene_id=scene_id)
        return self.stub.CreateScene(request, metadata=self.metadata, timeout=self.timeout)

    def get_scene(self, scene_id: str) -> pb.Scene:
        return self.stub.GetScene(
            pb.GetSceneRequest(scene_id=scene_id), metadata=self.metadata, timeout=self.timeout
        )

    def delete_scene(self, scene_id: str) -> None:
        self.stub.DeleteScene(
            pb.DeleteSceneRequest(scene_id=scene_id), metadata=self.metadata, timeout=self.timeout
        )

    def scene_chat(
        self,
        scene_id: str,
        text: str,
        *,
        speaker: str = "",
        responder: str = "",
        no_reply: bool = False,
        screenshot: Any = None,
        scene: Sequence[Any] = (),
        state: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **generation: Any,
    ) -> Iterator[pb.SceneEvent]:
        """A line to the scene (from the player, or from `speaker`); yields the answering NPC's events, each with its
        session_id and name. `responder`: the session the game wants to answer."""
        request = _scene_chat_request(
            scene_id, text, speaker, responder, no_reply, screenshot, scene, state, generation
        )
        return self.stub.SceneChat(request, metadata=self.metadata, timeout=timeout or self.timeout)

    def converse(
        self,
        scene_id: str,
        turns: int = 4,
        *,
        topic: str = "",
        screenshot: Any = None,
        timeout: float | None = None,
        **generation: Any,
    ) -> Iterator[pb.SceneEvent]:
        """The NPCs talk among themselves for `turns` lines; cancel the returned call (or SceneChat) to interrupt."""
        request = _converse_request(scene_id, turns, topic, screenshot, generation)
        return self.stub.Converse(request, metadata=self.metadata, timeout=timeout or self.timeout)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """asyncio twin of Client (grpc.aio)."""

    def __init__(
        self,
        address: str = "127.0.0.1:50051",
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        tls_ca: str | Path | None = None,
    ):
        creds = _tls(tls_ca)
        self.channel = (
            grpc.aio.secure_channel(address, creds, options=_channel_options())
            if creds
            else grpc.aio.insecure_channel(address, options=_channel_options())
        )
        self.stub = pb_grpc.NpcServiceStub(self.channel)
        self.metadata = _metadata(api_key)
        self.timeout = timeout

    async def create_session(
        self, persona: Persona | dict[str, Any], session_id: str = "", player_id: str = ""
    ) -> pb.Session:
        request = pb.CreateSessionRequest(
            persona=_persona(persona), session_id=session_id, player_id=player_id
        )
        return await self.stub.CreateSession(request, metadata=self.metadata, timeout=self.timeout)

    async def create_session_from_file(
        self, persona_id: str, session_id: str = "", player_id: str = ""
    ) -> pb.Session:
        """A session with a persona the server loaded from its --personas folder."""
        request = pb.CreateSessionRequest(persona_id=persona_id, session_id=session_id, player_id=player_id)
        return await self.stub.CreateSession(request, metadata=self.metadata, timeout=self.timeout)

    async def get_session(self, session_id: str) -> pb.Session:
        return await self.stub.GetSession(
            pb.GetSessionRequest(session_id=session_id), metadata=self.metadata, timeout=self.timeout
        )

    async def list_sessions(self, page_size: int = 100, page_token: str = "") -> pb.ListSessionsResponse:
        return await self.stub.ListSessions(
            pb.ListSessionsRequest(page_size=page_size, page_token=page_token),
            metadata=self.metadata,
            timeout=self.timeout,
        )

    async def delete_session(self, session_id: str) -> None:
        await self.stub.DeleteSession(
            pb.DeleteSessionRequest(session_id=session_id), metadata=self.metadata, timeout=self.timeout
        )

    async def shutdown(self) -> int:
        """Stop the server gracefully (it needs an API key); returns the turns that were in flight."""
        done = await self.stub.Shutdown(pb.ShutdownRequest(), metadata=self.metadata, timeout=self.timeout)
        return done.turns_in_flight

    async def export_session(self, session_id: str) -> pb.SessionSnapshot:
        return await self.stub.ExportSession(
            pb.ExportSessionRequest(session_id=session_id), metadata=self.metadata, timeout=self.timeout
        )

    async def import_session(self, snapshot: pb.SessionSnapshot) -> pb.Session:
        return await self.stub.ImportSession(snapshot, metadata=self.metadata, timeout=self.timeout)

    # ---- long-term memory and scenes: as Client's ------------------------------------------------------
    async def add_memory(self, text: str, *, npc: str = "", group: str = "", player_id: str = "") -> pb.Memory:
        memory = pb.Memory(text=text, npc=npc, group=group, player_id=player_id)
        return await self.stub.AddMemory(memory, metadata=self.metadata, timeout=self.timeout)

    async def list_memories(
        self, *, npc: str = "", group: str = "", player_id: str = "", limit: int = 100
    ) -> list[pb.Memory]:
        request = pb.ListMemoriesRequest(npc=npc, group=group, player_id=player_id, limit=limit)
        found = await self.stub.ListMemories(request, metadata=self.metadata, timeout=self.timeout)
        return list(found.memories)

    async def delete_memory(self, memory_id: str) -> None:
        await self.stub.DeleteMemory(
            pb.DeleteMemoryRequest(id=memory_id), metadata=self.metadata, timeout=self.timeout
        )

    async def forget_player(self, player_id: str) -> pb.ForgetPlayerResponse:
        return await self.stub.ForgetPlayer(
            pb.ForgetPlayerRequest(player_id=player_id), metadata=self.metadata, timeout=self.timeout
        )

    async def create_scene(self, session_ids: Sequence[str], scene_id: str = "") -> pb.Scene:
        request = pb.CreateSceneRequest(session_ids=list(session_ids), scene_id=scene_id)
        return await self.stub.CreateScene(request, metadata=self.metadata, timeout=self.timeout)

    async def get_scene(self, scene_id: str) -> pb.Scene:
        return await self.stub.GetScene(
            pb.GetSceneRequest(scene_id=scene_id), metadata=self.metadata, timeout=self.timeout
        )

    async def delete_scene(self, scene_id: str) -> None:
        await self.stub.DeleteScene(
            pb.DeleteSceneRequest(scene_id=scene_id), metadata=self.metadata, timeout=self.timeout
        )

    def scene_chat(
        self,
        scene_id: str,
        text: str,
        *,
        speaker: str = "",
        responder: str = "",
        no_reply: bool = False,
        screenshot: Any = None,
        scene: Sequence[Any] = (),
        state: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **generation: Any,
    ) -> AsyncIterator[pb.SceneEvent]:
        """As Client.scene_chat: iterate with `async for`."""
        request = _scene_chat_request(
            scene_id, text, speaker, responder, no_reply, screenshot, scene, state, generation
        )
        return self.stub.SceneChat(request, metadata=self.metadata, timeout=timeout or self.timeout)

    def converse(
        self,
        scene_id: str,
        turns: int = 4,
        *,
        topic: str = "",
        screenshot: Any = None,
        timeout: float | None = None,
        **generation: Any,
    ) -> AsyncIterator[pb.SceneEvent]:
        """As Client.converse: iterate with `async for`; cancel the call to interrupt."""
        request = _converse_request(scene_id, turns, topic, screenshot, generation)
        return self.stub.Converse(request, metadata=self.metadata, timeout=timeout or self.timeout)

    def chat(
        self,
        session_id: str,
        text: str,
        *,
        screenshot: Any = None,
        scene: Sequence[Any] = (),
        state: Mapping[str, str] | None = None,
        timeout: float | None = None,
        turn_id: str | None = None,
        retry: RetryPolicy | None = None,
        explain: bool = False,
        **generation: Any,
    ) -> AsyncChatStream:
        """As Client.chat: iterate with `async for`; `retry` retries UNAVAILABLE with the same turn_id."""
        turn_id = _turn_id(turn_id, retry, generation)
        request = _chat_request(session_id, text, screenshot, scene, generation, state, turn_id, explain)

        def call() -> Any:
            return self.stub.Chat(request, metadata=self.metadata, timeout=timeout or self.timeout)

        return AsyncChatStream(call(), call, retry)

    async def say(self, session_id: str, text: str, **kwargs: Any) -> Done:
        """The whole reply at once. Retried on UNAVAILABLE with the same turn_id unless `retry=None` is given."""
        kwargs.setdefault("retry", RetryPolicy())
        async with self.chat(session_id, text, **kwargs) as stream:
            async for _ in stream:
                pass
        assert stream.done is not None
        return stream.done

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
