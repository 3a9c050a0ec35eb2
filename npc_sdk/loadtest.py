"""`npc-sdk loadtest`: many sessions chatting at once against a running server, measured from the client side.

First one session alone (the single-session decode rate), then N sessions each playing T turns concurrently.
Reports p50/p95 time to first delta, aggregate decode tokens/s and its ratio to the single-session rate, errors,
and (with --server-pid) the server's resident memory after creating the idle sessions.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import grpc

from .client import AsyncClient
from .demo import DEMO_PERSONA, scene_path
from .events import Delta, Done

LINES = (
    "Good evening. Cold night for the road.",
    "What do you make of what I saw out there?",
    "Can you mend my sword before morning?",
    "How much will that cost me?",
    "Tell me about the mine north of here.",
)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _session(client: AsyncClient, turns: int, max_tokens: int, shot: bytes, out: dict) -> None:
    session = await client.create_session(DEMO_PERSONA)
    for i in range(turns):
        started = time.perf_counter()
        first = None
        try:
            async with client.chat(
                session.session_id,
                LINES[i % len(LINES)],
                screenshot=shot if i % 2 == 0 else None,
                max_tokens=max_tokens,
                temperature=0.0,
            ) as stream:
                async for event in stream:
                    if isinstance(event, Delta) and first is None:
                        first = time.perf_counter()
                    elif isinstance(event, Done):
                        out["ttft_ms"].append(((first or time.perf_counter()) - started) * 1000)
                        out["tokens"] += event.usage.completion_tokens
                        out["server_tok_s"].append(event.timings.decode_tokens_per_second)
        except grpc.RpcError as exc:
            out["errors"].append(f"{exc.code().name}: {exc.details()}")
    await client.delete_session(session.session_id)


async def _run(
    address: str,
    sessions: int,
    turns: int,
    api_key: str | None,
    max_tokens: int,
    idle: int,
    server_pid: int | None,
) -> dict:
    shot = scene_path("meadow_slimes.png").read_bytes()
    figures: dict = {}
    async with AsyncClient(address, api_key=api_key, timeout=300) as client:
        if idle:
            ids = []
            for _ in range(idle):
                ids.append((await client.create_session(DEMO_PERSONA)).session_id)
            if server_pid:
                figures["server_rss_mb_with_idle_sessions"] = round(rss_mb(server_pid), 1)
            figures["idle_sessions"] = idle
        alone = {"ttft_ms": [], "tokens": 0, "server_tok_s": [], "errors": []}
        await _session(client, 2, max_tokens, shot, alone)
        single_rate = statistics.median(alone["server_tok_s"]) if alone["server_tok_s"] else 0.0

        many = {"ttft_ms": [], "tokens": 0, "server_tok_s": [], "errors": []}
        started = time.perf_counter()
        await asyncio.gather(*(_session(client, turns, max_tokens, shot, many) for _ in range(sessions)))
        wall = time.perf_counter() - started
        if idle:
            for sid in ids:
                await client.delete_session(sid)
    aggregate = many["tokens"] / wall if wall > 0 else 0.0
    figures.update(
        {
            "sessions": sessions,
            "turns_per_session": turns,
            "single_session_decode_tokens_per_second": round(single_rate, 1),
            "ttft_ms_p50": round(_percentile(many["ttft_ms"], 0.5), 1),
            "ttft_ms_p95": round(_percentile(many["ttft_ms"], 0.95), 1),
            "aggregate_tokens_per_second": round(aggregate, 1),
            "aggregate_vs_single": round(aggregate / single_rate, 2) if single_rate else 0.0,
            "turns_completed": len(many["ttft_ms"]),
            "errors": len(many["errors"]) + len(alone["errors"]),
            "error_samples": (many["errors"] + alone["errors"])[:5],
        }
    )
    if server_pid:
        figures["server_rss_mb_after"] = round(rss_mb(server_pid), 1)
    return figures


def run_loadtest(
    address: str,
    *,
    sessions: int = 8,
    turns: int = 3,
    api_key: str | None = None,
    max_tokens: int = 40,
    idle_sessions: int = 0,
    server_pid: int | None = None,
) -> dict:
    return asyncio.run(_run(address, sessions, turns, api_key, max_tokens, idle_sessions, server_pid))
