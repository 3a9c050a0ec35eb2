"""Cluster mode's error hand-off: a replica's failure comes back to the front door as the same error class, so the
client gets the gRPC status a single server would give (no Ray needed for this)."""

from __future__ import annotations

import pickle

import grpc
import pytest

from npc_sdk.errors import (
    InvalidInputError,
    LimitExceededError,
    NpcError,
    SessionBusyError,
    SessionNotFoundError,
    UnavailableError,
)
from npc_sdk.server.remote import RemoteFailure
from npc_sdk.server.service import status_for


@pytest.mark.parametrize(
    "error",
    [
        InvalidInputError("scene[1].x", "must be in [0, 1] (a share of the screen), got 2.0"),
        SessionNotFoundError("session_id: no session 'x'"),
        SessionBusyError("session_id: 'x' has a turn in flight"),
        LimitExceededError("64 turns are already waiting; try again shortly"),
        UnavailableError("shutting down"),
        RuntimeError("onnxruntime failed"),
    ],
)
def test_a_replica_failure_keeps_its_status_and_message(error):
    failure = pickle.loads(pickle.dumps(RemoteFailure.of(error)))  # as Ray carries it between processes
    again = failure.error()
    assert status_for(again) == status_for(error)
    assert str(again) == str(error) if isinstance(error, NpcError) else str(error) in str(again)
    if isinstance(error, InvalidInputError):
        assert (again.field, again.message) == (error.field, error.message)
    if not isinstance(error, NpcError):
        assert status_for(again) == grpc.StatusCode.INTERNAL
