"""WebSocket gateway: npc.v1.NpcService as JSON text frames, for GDScript and web builds that cannot speak HTTP/2.

`npc-sdk serve --ws-port P` runs it in the server's own process and asyncio loop, bound to the same `--host`
(P = 0 picks a free port; the chosen one is printed as `npc-sdk: websocket gateway (...) on HOST:PORT`, and is the
ready line's `ws_port`).
Every call is forwarded over a loopback grpc.aio channel to the server's own gRPC port, so validation, API-key
auth, status codes, limits and the scheduler are exactly the gRPC ones. Full description: docs/websocket.md.

Protocol (messages are protobuf's canonical JSON mapping, as `json_format.MessageToJson` writes it: camelCase
names, int64 as strings, bytes as base64, enums by name; requests may also use the proto field names):

    client -> {"id": "c1", "method": "CreateSession", "request": {"persona": {"name": "Brakka"}}, "apiKey": "..."}
    server <- {"id": "c1", "response": {"sessionId": "...", ...}}
    client -> {"id": "c2", "method": "Chat", "request": {"sessionId": "...", "text": "Hi",
               "screenshot": {"data": "<base64 PNG>", "encoding": "PNG"}}}
    server <- {"id": "c2", "event": {"action": {"name": "open_shop", "args": {}, "confidence": 0.71}}}
                                                                    (at most one, before the first delta)
    server <- {"id": "c2", "event": {"delta": {"text": "Hm"}}}     (one frame per delta, as it is decoded)
    server <- {"id": "c2", "event": {"done": {"text": "Hmph.", "finishReason": "stop",
               "emotion": {"label": "anger", "intensity": 0.62}, ...}}}
    client -> {"id": "s1", "method": "SceneChat", "request": {"sceneId": "...", "text": "Mira, a room?"}}
    server <- {"id": "s1", "event": {"sessionId": "...", "speaker": "Mira", "event": {"delta": {"text": "Aye"}}}}
    server <- {"id": "s1", "end": true}                             (every stream but Chat's ends with this frame)
    client -> {"id": "c2", "cancel": true}                          (stops an in-flight call; Chat stores nothing)
    server <- {"id": "c2", "error": {"code": "CANCELLED", "message": "cancelled by the client"}}
    any call  <- {"id": "...", "error": {"code": "INVALID_ARGUMENT", "message": "text: is empty"}}

One text frame per call; `method` is an NpcService method name; `request` defaults to {}; `apiKey` becomes the
`authorization: Bearer <key>` metadata the server's key check reads. Calls are multiplexed by `id` (any string
the client picks, unique among its calls in flight on that socket). Errors carry the gRPC status name and its
message, which names the field first. A malformed frame (bad JSON, unknown method, a request field that does not
exist or has the wrong type) gets an INVALID_ARGUMENT error frame (`id` null when it could not be read) and the
socket stays open. Closing the socket cancels its calls in flight.

Frames are limited to 16 MiB by default (`--ws-max-message-mb`): a screenshot downscaled to ~512 px as PNG or
JPEG is well under 1 MB of base64, and even a raw 1920x1080 RGBA8 frame (8.3 MB, 11 MB as base64) fits. The
limit is lower than gRPC's 64 MiB because JSON costs more: a frame is held three or four times over while it is
decoded (text, base64, bytes, protobuf; ~7 ms per MB on a worker thread), and websockets buffers up to
`max_queue` (8) frames per socket before it stops reading. A 4K raw frame (44 MB as base64) should go over gRPC or
be downscaled. A frame over the limit closes the socket with code 1009 (message too big), as RFC 6455 prescribes.

A subclass may answer methods of its own in this process (`local_methods`: the studio's persona-file methods,
npc_sdk/studio) and look at each HTTP request before the handshake (`process_request`: the studio serves its page
and checks Origin and Host there); every NpcService call still goes to the gRPC server as above.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .._proto.npc.v1 import npc_pb2 as pb
from .._proto.npc.v1 import npc_pb2_grpc as pb_grpc
from ..errors import InvalidInputError

log = logging.getLogger("npc_sdk.server.ws_gateway")

DEFAULT_MAX_MESSAGE_MB = 16
CLOSE_WAIT_S = 2.0  # on stop: how long clients get for the closing handshake before they are cut off
MAX_CALLS_PER_SOCKET = 64  # calls in flight on one socket; more get RESOURCE_EXHAUSTED
PARSE_OFF_LOOP_BYTES = 256 << 10  # frames larger than this are parsed on a worker thread
_QUIET = logging.getLogger(
    "npc_sdk.server.ws_gateway.websockets"
)  # its "server listening" line would be a 2nd port
_QUIET.setLevel(logging.WARNING)
_SERVICE = pb.DESCRIPTOR.services_by_name["NpcService"]


@dataclass(frozen=True)
class _Method:
    name: str
    request_type: type
    streaming: bool


METHODS: dict[str, _Method] = {
    m.name: _Method(m.name, getattr(pb, m.input_type.name), m.server_streaming) for m in _SERVICE.methods
}


class FrameError(Exception):
    """A frame the gateway cannot forward: answered with an INVALID_ARGUMENT (or other) error frame."""

    def __init__(self, message: str, call_id: str | None = None, code: str = "INVALID_ARGUMENT") -> None:
        super().__init__(message)
        self.call_id, self.code = call_id, code


def parse_error_message(exc: json_format.ParseError) -> str:
    """json_format's message turned into the server's style: the field path first (`screenshot.data: ...`)."""
    text, path = str(exc), []
    while m := re.match(r"Failed to parse (\S+) field: (.*)", text, re.S):
        path.append(m[1])
        text = m[2]
    m = re.match(r'Message type "[\w.]+" has no field named "([^"]*)" at "[^"]*"\.\s*(.*)', text, re.S)
    if m:
        path.append(m[1])
        fields = re.search(r"\[(.*)\]", m[2])
        text = "no such field" + (f"; the fields are {fields[1]}" if fields else "")
    text = text.strip()
    # "... at ChatRequest.scene[0].x." names the whole path from the request down: the best field name there is
    full = re.search(r"\s+at [A-Z]\w*\.([\w.\[\]]+?)\.*$", text)
    if full:
        path, text = [full[1]], text[: full.start()]
    text = re.sub(r"\s+at [\w.]+\.*$", "", text).rstrip(".")
    return f"{'.'.join(path) or 'request'}: {text}"


@dataclass
class Call:
    """A frame the gateway can forward: the method, its request message and the caller's API key."""

    call_id: str
    method: _Method
    request: Any
    api_key: str | None = None


@dataclass
class LocalCall:
    """A frame for a method the gateway answers in this process (`WsGateway.local_methods`), not over gRPC."""

    call_id: str
    method: str
    request: dict[str, Any]  # the JSON object as sent
    api_key: str | None = None


# A method answered in this process: (request object, the caller's API key) -> the response object. It raises
# CallError (or InvalidInputError) for an error frame.
LocalMethod = Callable[[dict[str, Any], str | None], Awaitable[dict[str, Any]]]


class CallError(Exception):
    """A local method's failure, answered as an error frame with this gRPC status name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_frame(message: str | bytes, local: Collection[str] = ()) -> Call | LocalCall | tuple[str, None]:
    """A call frame as a Call (a LocalCall for a method named in `local`), a cancel frame as (id, None); anything
    else raises FrameError."""
    if isinstance(message, bytes):
        raise FrameError("frame: send text frames holding JSON, not binary frames")
    try:
        frame = json.loads(message)
    except ValueError as exc:
        raise FrameError(f"frame: not JSON ({exc})") from exc
    if not isinstance(frame, dict):
        raise FrameError("frame: must be a JSON object with id, method and request")
    call_id = frame.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise FrameError("id: must be a non-empty string the client chooses")
    if frame.get("cancel"):
        return call_id, None
    name = frame.get("method")
    method = METHODS.get(name) if isinstance(name, str) else None
    if method is None and name not in local:
        raise FrameError(f"method: unknown method {name!r}; one of {', '.join([*METHODS, *local])}", call_id)
    api_key = frame.get("apiKey")
    if api_key is not None and not isinstance(api_key, str):
        raise FrameError("apiKey: must be a string", call_id)
    body = frame.get("request", {})
    if method is None:
        if not isinstance(body, dict):
            raise FrameError("request: must be a JSON object", call_id)
        return LocalCall(call_id, name, body, api_key or None)
    if not isinstance(body, dict):
        raise FrameError(
            f"request: must be a JSON object (the {method.request_type.__name__} message)", call_id
        )
    try:
        request = json_format.ParseDict(body, method.request_type())
    except json_format.ParseError as exc:
        raise FrameError(parse_error_message(exc), call_id) from exc
    return Call(call_id, method, request, api_key or None)


def _frame(**fields: Any) -> str:
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def _to_json(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message)


def _error(call_id: str | None, code: str, message: str) -> str:
    return _frame(id=call_id, error={"code": code, "message": message})


def dial_target(host: str, port: int) -> str:
    """Where the gateway reaches the gRPC server: the bound host, or loopback when bound to every address."""
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class _InFlight:
    task: asyncio.Task | None = None
    rpc: Any = None  # the grpc.aio call, once started
    cancelled: bool = False  # by the client's cancel frame
    local: bool = False  # a local method: answered at once, not cancellable


@dataclass
class WsGateway:
    """The gateway: bind() early (so a taken port fails before the model loads), start() once gRPC listens."""

    host: str = "127.0.0.1"
    port: int = 0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_MB << 20
    grpc_max_message_bytes: int = 64 << 20
    tls_cert: Path | None = None  # serve wss:// with the gRPC server's pair, and trust it on the loopback hop
    tls_key: Path | None = None
    # Browser pages allowed to connect (their Origin header, e.g. "https://game.example"). Native clients send no
    # Origin and are always let in; any page not listed is refused with HTTP 403, so a web page open on the
    # player's machine cannot drive or read the local server (cross-site WebSocket hijacking).
    allowed_origins: tuple[str, ...] = ()
    printer: Callable[[str], None] = field(default=lambda line: print(line, flush=True))
    sock: socket.socket | None = None
    server: Server | None = None
    channel: grpc.aio.Channel | None = None
    stub: pb_grpc.NpcServiceStub | None = None
    sockets: set[ServerConnection] = field(default_factory=set)  # the connections being served
    # local_methods(), read at start
    _local: Mapping[str, LocalMethod] = field(default_factory=dict, init=False)

    # ---- what a subclass (the studio) changes --------------------------------------------------------------
    def local_methods(self) -> Mapping[str, LocalMethod]:
        """Methods answered in this process instead of forwarded over gRPC: none here."""
        return {}

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Called on every HTTP request before the handshake; a Response is sent instead of it. None here: the
        handshake goes on, and websockets checks the Origin against `origins()`."""
        return None

    def origins(self) -> list[str | None] | None:
        """The Origin headers websockets lets in (None in the list: no Origin, a native client); None: all."""
        return [None, *self.allowed_origins]

    def banner(self, scheme: str) -> str:
        """The line printed once the gateway accepts."""
        mb = self.max_message_bytes / (1 << 20)
        return f"npc-sdk: websocket gateway ({scheme}://, JSON, frames up to {mb:g} MiB) on {self.host}:{self.port}"

    def ready_fields(self) -> dict[str, Any]:
        """What the ready line says of this gateway."""
        return {"ws_port": self.port}

    # ---- the gateway ---------------------------------------------------------------------------------------
    def bind(self) -> int:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        host = "" if self.host in ("0.0.0.0", "::") else self.host.strip("[]")
        self.sock = socket.create_server((host, self.port), family=family, reuse_port=False)
        self.port = self.sock.getsockname()[1]
        return self.port

    async def start(self, grpc_port: int) -> None:
        if self.sock is None:
            self.bind()
        options = [
            ("grpc.max_receive_message_length", self.grpc_max_message_bytes),
            ("grpc.max_send_message_length", self.grpc_max_message_bytes),
        ]
        target = dial_target(self.host, grpc_port)
        context = None
        if self.tls_cert and self.tls_key:
            creds = grpc.ssl_channel_credentials(root_certificates=Path(self.tls_cert).read_bytes())
            self.channel = grpc.aio.secure_channel(target, creds, options=options)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self.tls_cert), str(self.tls_key))
        else:
            self.channel = grpc.aio.insecure_channel(target, options=options)
        self.stub = pb_grpc.NpcServiceStub(self.channel)
        self._local = dict(self.local_methods())
        self.server = await serve(
            self._connection,
            sock=self.sock,
            ssl=context,
            max_size=self.max_message_bytes,
            compression=None,  # deltas are tiny and base64 PNG barely deflates: save the CPU
            ping_interval=20,
            ping_timeout=20,
            max_queue=8,  # frames read ahead per socket: at most 8 x max_message_bytes buffered
            origins=self.origins(),  # None in it: no Origin header (a native client)
            process_request=self.process_request,
            logger=_QUIET,
        )
        self.printer(self.banner("wss" if context else "ws"))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()  # a close frame to each client
            try:
                await asyncio.wait_for(self.server.wait_closed(), CLOSE_WAIT_S)
            except TimeoutError:
                # A client that does not read (a game that stops the server as it quits) would hold the exit for
                # websockets' closing timeouts, 10 to 20 s: the store is already closed, so cut them off.
                for ws in list(self.sockets):
                    ws.transport.abort()
                await self.server.wait_closed()
        elif self.sock is not None:
            self.sock.close()
        if self.channel is not None:
            await self.channel.close()

    async def _connection(self, ws: ServerConnection) -> None:
        calls: dict[str, _InFlight] = {}
        self.sockets.add(ws)

        async def send(text: str) -> None:
            try:
                await ws.send(text)
            except ConnectionClosed:
                pass  # the client left; its calls are cancelled below

        try:
            async for message in ws:
                try:
                    if len(message) > PARSE_OFF_LOOP_BYTES:
                        parsed = await asyncio.to_thread(parse_frame, message, self._local)
                    else:
                        parsed = parse_frame(message, self._local)
                except FrameError as exc:
                    await send(_error(exc.call_id, exc.code, str(exc)))
                    continue
                if isinstance(parsed, tuple):
                    flight = calls.get(parsed[0])
                    if flight is not None and not flight.cancelled and not flight.local:
                        flight.cancelled = True  # a call not started yet cancels itself once it starts
                        if flight.rpc is not None:
                            flight.rpc.cancel()
                    continue  # a cancel for a call that already ended (or a local one) is not an error
                call = parsed
                if call.call_id in calls:
                    await send(_error(call.call_id, "INVALID_ARGUMENT", f"id: {call.call_id!r} is in flight"))
                    continue
                if len(calls) >= MAX_CALLS_PER_SOCKET:
                    await send(
                        _error(
                            call.call_id,
                            "RESOURCE_EXHAUSTED",
                            f"id: this socket has {MAX_CALLS_PER_SOCKET} calls in flight; wait for one to end",
                        )
                    )
                    continue
                flight = calls[call.call_id] = _InFlight(local=isinstance(call, LocalCall))
                if isinstance(call, LocalCall):
                    flight.task = asyncio.create_task(self._answer(call, send))
                else:
                    flight.task = asyncio.create_task(self._forward(call, flight, send))
                flight.task.add_done_callback(lambda _t, cid=call.call_id: calls.pop(cid, None))
        except ConnectionClosed:
            pass
        finally:
            pending = [f.task for f in calls.values() if f.task is not None]
            for flight in list(calls.values()):
                if flight.rpc is not None:
                    flight.rpc.cancel()  # the server stops the turn within a step and stores nothing
                if flight.task is not None:
                    flight.task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            self.sockets.discard(ws)

    async def _forward(self, call: Call, flight: _InFlight, send: Callable[[str], Any]) -> None:
        assert self.stub is not None
        rpc_method = getattr(self.stub, call.method.name)
        metadata = (("authorization", f"Bearer {call.api_key}"),) if call.api_key else None
        cid = call.call_id
        try:
            flight.rpc = rpc_method(call.request, metadata=metadata)
            if flight.cancelled:
                flight.rpc.cancel()
            if call.method.streaming:
                async for event in flight.rpc:
                    await send(_frame(id=cid, event=_to_json(event)))
                if call.method.name != "Chat":  # a Chat ends with its done; scene streams may end without one
                    await send(_frame(id=cid, end=True))
            else:
                response = await flight.rpc
                await send(_frame(id=cid, response=_to_json(response)))
        except grpc.aio.AioRpcError as exc:
            if flight.cancelled:
                await send(_error(cid, "CANCELLED", "cancelled by the client"))
            else:
                await send(_error(cid, exc.code().name, exc.details() or ""))
        except asyncio.CancelledError:
            if not flight.cancelled:
                raise  # the socket closed or the server is stopping
            await send(_error(cid, "CANCELLED", "cancelled by the client"))
        except Exception as exc:  # noqa: BLE001 - one call's failure must not end the socket
            log.exception("websocket gateway: %s failed", call.method.name)
            await send(_error(cid, "INTERNAL", f"gateway: {type(exc).__name__}: {exc}"))

    async def _answer(self, call: LocalCall, send: Callable[[str], Any]) -> None:
        cid = call.call_id
        try:
            response = await self._local[call.method](call.request, call.api_key)
            await send(_frame(id=cid, response=response))
        except CallError as exc:
            await send(_error(cid, exc.code, str(exc)))
        except InvalidInputError as exc:
            await send(_error(cid, "INVALID_ARGUMENT", str(exc)))
        except Exception as exc:  # noqa: BLE001 - one call's failure must not end the socket
            log.exception("websocket gateway: %s failed", call.method)
            await send(_error(cid, "INTERNAL", f"{call.method}: {type(exc).__name__}: {exc}"))


async def serve_with_gateway(model_path: Path, config, *gateways: WsGateway) -> None:
    """`server.serve` plus gateways (the WebSocket gateway, the studio) on the same loop: they start once gRPC
    listens and close after it."""
    from .app import serve as serve_grpc

    for gateway in gateways:
        gateway.bind()  # a taken port fails now, before the model loads

    async def started(grpc_port: int) -> dict:
        # Accepting before the ready line names their ports; a gateway that cannot start stops the server (raised).
        fields: dict[str, Any] = {}
        for gateway in gateways:
            await gateway.start(grpc_port)
            fields.update(gateway.ready_fields())
        return fields

    try:
        await serve_grpc(model_path, config, started=started)
    finally:
        for gateway in gateways:
            await gateway.close()
