"""npc_sdk.client: Client and AsyncClient are twins (same public methods, same signatures, same retries).

No model: a fake NpcService on loopback answers the calls, and cuts the first Chat attempt off with UNAVAILABLE after
one delta, as a server that restarts mid-reply does.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from concurrent import futures

import grpc
import pytest

from npc_sdk._proto.npc.v1 import npc_pb2 as pb
from npc_sdk._proto.npc.v1 import npc_pb2_grpc as pb_grpc
from npc_sdk.client import AsyncChatStream, AsyncClient, ChatStream, Client, RetryPolicy
from npc_sdk.runtime.events import Delta, Done

# The context-manager protocol is the one place where the twins' names differ.
SYNC_TO_ASYNC = {"__enter__": "__aenter__", "__exit__": "__aexit__", "__iter__": "__aiter__"}
COMPARED_DUNDERS = {"__init__", *SYNC_TO_ASYNC, *SYNC_TO_ASYNC.values()}


def _public(cls: type) -> dict[str, object]:
    return {
        SYNC_TO_ASYNC.get(name, name): member
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") or name in COMPARED_DUNDERS
    }


def _parameters(function: object) -> list[tuple[str, object, object, object]]:
    return [
        (p.name, p.kind, p.default, p.annotation)
        for p in inspect.signature(function).parameters.values()  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize(("sync", "async_"), [(Client, AsyncClient), (ChatStream, AsyncChatStream)])
def test_the_async_twin_has_every_public_method_with_the_same_signature(sync, async_):
    ours, theirs = _public(sync), _public(async_)
    assert sorted(ours) == sorted(theirs)
    for name, member in ours.items():
        twin = theirs[name]
        if isinstance(member, property):
            assert isinstance(twin, property), name
            continue
        assert _parameters(member) == _parameters(twin), name
    # What does I/O is awaited; chat returns the stream itself (iterated with `async for`), as Client.chat does.
    for name in ("create_session", "create_session_from_file", "get_session", "list_sessions", "delete_session",
                 "export_session", "import_session", "say", "close"):  # fmt: skip
        if sync is Client:
            assert inspect.iscoroutinefunction(getattr(async_, name)), name
            assert not inspect.iscoroutinefunction(getattr(sync, name)), name
    if sync is Client:
        assert not inspect.iscoroutinefunction(AsyncClient.chat)


class FakeService(pb_grpc.NpcServiceServicer):
    """Records every request; the first Chat of each turn_id sends one delta and then fails with UNAVAILABLE."""

    REPLY = ("Hmph. ", "Mind ", "the anvil.")

    def __init__(self) -> None:
        self.requests: list[object] = []
        self.turns: dict[str, int] = {}
        self.lock = threading.Lock()

    def CreateSession(self, request, context):
        self.requests.append(request)
        name = request.persona_id or request.persona.name
        return pb.Session(session_id=request.session_id or "s-1", persona=pb.Persona(name=name))

    def ListSessions(self, request, context):
        self.requests.append(request)
        return pb.ListSessionsResponse(next_page_token=f"after-{request.page_token}-{request.page_size}")

    def Chat(self, request, context):
        self.requests.append(request)
        with self.lock:
            attempt = self.turns[request.turn_id] = self.turns.get(request.turn_id, 0) + 1
        if attempt == 1 and request.turn_id:
            yield pb.ChatEvent(delta=pb.Delta(text=self.REPLY[0]))
            context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        for piece in self.REPLY:
            yield pb.ChatEvent(delta=pb.Delta(text=piece))
        yield pb.ChatEvent(done=pb.Done(text="".join(self.REPLY), finish_reason="stop"))


@pytest.fixture
def fake():
    service = FakeService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_NpcServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield service, f"127.0.0.1:{port}"
    finally:
        server.stop(None)


FAST = RetryPolicy(attempts=3, deadline_s=10, backoff_s=0.01)


def _check_retried(service: FakeService, events: list, stream) -> None:
    deltas = [e.text for e in events if isinstance(e, Delta)]
    assert deltas == list(FakeService.REPLY)  # the first piece once, not again after the retry
    assert isinstance(events[-1], Done) and stream.text == events[-1].text == "".join(FakeService.REPLY)
    assert stream.attempts == 2
    first, second = [r for r in service.requests if isinstance(r, pb.ChatRequest)]
    assert first.turn_id and first.turn_id == second.turn_id
    assert first.generation.HasField("seed") and first.generation.seed == second.generation.seed


def test_client_retries_a_cut_turn_with_the_same_turn_id(fake):
    service, address = fake
    with Client(address) as npc:
        with npc.chat("s-1", "Hello", retry=FAST) as stream:
            events = list(stream)
    _check_retried(service, events, stream)


def test_async_client_retries_a_cut_turn_with_the_same_turn_id(fake):
    service, address = fake

    async def talk():
        async with AsyncClient(address) as npc:
            async with npc.chat("s-1", "Hello", retry=FAST) as stream:
                return [event async for event in stream], stream

    events, stream = asyncio.run(talk())
    _check_retried(service, events, stream)


def test_without_a_retry_policy_unavailable_reaches_the_caller(fake):
    service, address = fake

    async def talk():
        async with AsyncClient(address) as npc:
            async with npc.chat("s-1", "Hello", turn_id="t-1") as stream:
                return [event async for event in stream]

    with pytest.raises(grpc.RpcError) as caught:
        asyncio.run(talk())
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    with Client(address) as npc, pytest.raises(grpc.RpcError):
        list(npc.chat("s-1", "Hello", turn_id="t-2"))


def test_say_retries_by_default_in_both_clients(fake):
    service, address = fake
    with Client(address) as npc:
        assert npc.say("s-1", "Hello").text == "".join(FakeService.REPLY)

    async def talk():
        async with AsyncClient(address) as npc:
            return await npc.say("s-1", "Hello")

    assert asyncio.run(talk()).text == "".join(FakeService.REPLY)
    assert sorted(service.turns.values()) == [2, 2]  # each cut off once, each asked again once


def test_async_client_lists_sessions_and_opens_persona_files(fake):
    service, address = fake

    async def calls():
        async with AsyncClient(address) as npc:
            return await npc.list_sessions(page_size=5, page_token="x"), await npc.create_session_from_file(
                "brakka", session_id="slot1.brakka"
            )

    listed, session = asyncio.run(calls())
    assert listed.next_page_token == "after-x-5"
    assert session.session_id == "slot1.brakka" and session.persona.name == "brakka"
    create = service.requests[-1]
    assert create.persona_id == "brakka" and not create.HasField("persona")
