"""Client and AsyncClient: the Python side of npc.v1.NpcService, used by the CLI, the tests and the samples.

Chat streams are context managers (sync and async twins): leaving the block early cancels the call on the
server, which stops that reply within a decode step and does not store it.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
from PIL import Image

from ._proto.npc.v1 import npc_pb2 as pb
from ._proto.npc.v1 import npc_pb2_grpc as pb_grpc
from .personas.persona import Persona
from .runtime.events import Action, Done, ReplyEvent
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
) -> pb.ChatRequest:
    return pb.ChatRequest(
        session_id=session_id,
        text=text,
        screenshot=image_message(screenshot) if screenshot is not None else None,
        generation=generation_message(**options),
        scene=[scene_to_proto(e) for e in scene],
        state=dict(state or {}),
    )


class ChatStream:
    """Iterate for at most one Action, Delta events, then one Done; `close()` (or leaving the `with`) cancels."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self.text = ""
        self.done: Done | None = None
        self.action: Action | None = None

    def __iter__(self) -> Iterator[ReplyEvent]:
        for msg in self._call:
            event = event_from_proto(msg, self.text)
            if isinstance(event, Done):
                self.done = event
            elif isinstance(event, Action):
                self.action = event
            else:
                self.text = event.snapshot
            yield event

    def close(self) -> None:
        self._call.cancel()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.done is None:
            self.close()


def _channel_options() -> list[tuple[str, int]]:
    return [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)]


def _tls(tls_ca: str | Path | None) -> grpc.ChannelCredentials | None:
    """Credentials trusting `tls_ca` (a PEM file: the server's own certificate when it is self-signed)."""
    return grpc.ssl_channel_credentials(Path(tls_ca).read_bytes()) if tls_ca else None


class Client:
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

    def create_session(self, persona: Persona | dict[str, Any], session_id: str = "") -> pb.Session:
        request = pb.CreateSessionRequest(persona=_persona(persona), session_id=session_id)
        return self.stub.CreateSession(request, metadata=self.metadata, timeout=self.timeout)

    def create_session_from_file(self, persona_id: str, session_id: str = "") -> pb.Session:
        """A session with a persona the server loaded from its --personas folder."""
        request = pb.CreateSessionRequest(persona_id=persona_id, session_id=session_id)
        return self.stub.CreateSession(request, metadata=self.metadata, timeout=self.timeout)

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
        **generation: Any,
    ) -> ChatStream:
        """Stream a reply. `scene`: what the game says is in view (SceneEntity, dicts of its fields, or tags).
        `state`: game facts ({"player_health": "low"}). `generation`: max_tokens, temperature, top_p, top_k,
        repetition_penalty, seed, stop, scene_word_weight, absent_word_weight."""
        call = self.stub.Chat(
            _chat_request(session_id, text, screenshot, scene, generation, state),
            metadata=self.metadata,
            timeout=timeout or self.timeout,
        )
        return ChatStream(call)

    def say(self, session_id: str, text: str, **kwargs: Any) -> Done:
        """The whole reply at once."""
        with self.chat(session_id, text, **kwargs) as stream:
            for _ in stream:
                pass
        assert stream.done is not None
        return stream.done

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncChatStream:
    def __init__(self, call: Any) -> None:
        self._call = call
        self.text = ""
        self.done: Done | None = None
        self.action: Action | None = None

    async def __aiter__(self) -> AsyncIterator[ReplyEvent]:
        async for msg in self._call:
            event = event_from_proto(msg, self.text)
            if isinstance(event, Done):
                self.done = event
            elif isinstance(event, Action):
                self.action = event
            else:
                self.text = event.snapshot
            yield event

    def close(self) -> None:
        self._call.cancel()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.done is None:
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

    async def create_session(self, persona: Persona | dict[str, Any], session_id: str = "") -> pb.Session:
        request = pb.CreateSessionRequest(persona=_persona(persona), session_id=session_id)
        return await self.stub.CreateSession(request, metadata=self.metadata, timeout=self.timeout)

    async def get_session(self, session_id: str) -> pb.Session:
        return await self.stub.GetSession(
            pb.GetSessionRequest(session_id=session_id), metadata=self.metadata, timeout=self.timeout
        )

    async def delete_session(self, session_id: str) -> None:
        await self.stub.DeleteSession(
            pb.DeleteSessionRequest(session_id=session_id), metadata=self.metadata, timeout=self.timeout
        )

    async def export_session(self, session_id: str) -> pb.SessionSnapshot:
        return await self.stub.ExportSession(
            pb.ExportSessionRequest(session_id=session_id), metadata=self.metadata, timeout=self.timeout
        )

    async def import_session(self, snapshot: pb.SessionSnapshot) -> pb.Session:
        return await self.stub.ImportSession(snapshot, metadata=self.metadata, timeout=self.timeout)

    def chat(
        self,
        session_id: str,
        text: str,
        *,
        screenshot: Any = None,
        scene: Sequence[Any] = (),
        state: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **generation: Any,
    ) -> AsyncChatStream:
        call = self.stub.Chat(
            _chat_request(session_id, text, screenshot, scene, generation, state),
            metadata=self.metadata,
            timeout=timeout or self.timeout,
        )
        return AsyncChatStream(call)

    async def say(self, session_id: str, text: str, **kwargs: Any) -> Done:
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
