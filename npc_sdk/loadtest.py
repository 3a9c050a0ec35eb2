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
from .runtime.events import Delta, Done

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
        last = None
        try:
            async with client.chat(
                session.session_id,
                LINES[i % len(LINES)],
                screenshot=shot if i % 2 == 0 else None,
                max_tokens=max_tokens,
                temperature=0.0,
            ) as stream:
                async for event in stream:
                    if isinstance(event, Delta):
                        now = time.perf_counter()
                        if first is None:
                            first = now
                        else:  # a talking NPC's stream: how long the player waits between two pieces of text
                            out["gap_ms"].append((now - last) * 1000)
                        last = now
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
        alone = {"ttft_ms": [], "gap_ms": [], "tokens": 0, "server_tok_s": [], "errors": []}
        await _session(client, 2, max_tokens, shot, alone)
        single_rate = statistics.median(alone["server_tok_s"]) if alone["server_tok_s"] else 0.0

        many = {"ttft_ms": [], "gap_ms": [], "tokens": 0, "server_tok_s": [], "errors": []}
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
            "gap_between_deltas_ms_p95": round(_percentile(many["gap_ms"], 0.95), 1),
            "gap_between_deltas_ms_max": round(max(many["gap_ms"], default=0.0), 1),
            "aggregate_tokens_per_second": round(aggregate, 1),
            "aggregate_vs_single": round(aggregate / single_rate, 2) if single_rate else 0.0,
            # one-clause replies are a few tokens, so a turn's fixed work (preparation, prefill, emotion) weighs
            # more than its decoding: turns a second say what a replica carries better than tokens a second
            "turns_per_second": round(len(many["ttft_ms"]) / wall, 2) if wall > 0 else 0.0,
            "tokens_per_turn": round(many["tokens"] / len(many["ttft_ms"]), 1) if many["ttft_ms"] else 0.0,
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


# ---- soak: the whole session life cycle in a loop, memory and latency over time -----------------------------
async def _life_cycle(
    client: AsyncClient, shot: bytes, ttfts: list[float], errors: list[str], stop: float
) -> int:
    cycles = 0
    while time.perf_counter() < stop:
        try:
            sid = (await client.create_session(DEMO_PERSONA)).session_id
            for i, line in enumerate(LINES[:2]):
                started = time.perf_counter()
                first = None
                async with client.chat(
                    sid, line, screenshot=shot if i == 0 else None, max_tokens=24
                ) as stream:
                    async for event in stream:
                        if first is None and isinstance(event, Delta):
                            first = time.perf_counter()
                ttfts.append(((first or time.perf_counter()) - started) * 1000)
            snapshot = await client.export_session(sid)
            await client.delete_session(sid)
            await client.import_session(snapshot)
            await client.say(sid, LINES[2], max_tokens=8)
            await client.delete_session(sid)
            cycles += 1
        except grpc.RpcError as exc:
            errors.append(f"{exc.code().name}: {exc.details()}")
    return cycles


def _slope_mb_per_min(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    xs = [p[0] / 60 for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


async def _soak(
    address: str, minutes: float, workers: int, api_key: str | None, server_pid: int | None, window_s: float
) -> dict:
    shot = scene_path("meadow_slimes.png").read_bytes()
    begin = time.perf_counter()
    stop = begin + minutes * 60
    ttfts: list[float] = []
    errors: list[str] = []
    samples: list[dict] = []

    async def sample() -> None:
        seen_ttft, seen_err = 0, 0
        while time.perf_counter() < stop:
            await asyncio.sleep(min(window_s, max(0.0, stop - time.perf_counter())))
            window = ttfts[seen_ttft:]
            samples.append(
                {
                    "t_s": round(time.perf_counter() - begin, 1),
                    "rss_mb": round(rss_mb(server_pid), 1) if server_pid else None,
                    "ttft_ms_p95": round(_percentile(window, 0.95), 1) if window else None,
                    "turns": len(window),
                    "errors": len(errors) - seen_err,
                }
            )
            seen_ttft, seen_err = len(ttfts), len(errors)

    async with AsyncClient(address, api_key=api_key, timeout=120) as client:
        results = await asyncio.gather(
            sample(), *(_life_cycle(client, shot, ttfts, errors, stop) for _ in range(workers))
        )
    cycles = sum(results[1:])
    warm = [
        (s["t_s"], s["rss_mb"]) for s in samples if s["rss_mb"] is not None and s["t_s"] >= 0.2 * minutes * 60
    ]
    return {
        "minutes": minutes,
        "workers": workers,
        "cycles": cycles,
        "turns": len(ttfts),
        "errors": len(errors),
        "error_samples": errors[:5],
        "ttft_ms_p95": round(_percentile(ttfts, 0.95), 1),
        "rss_mb_start": samples[0]["rss_mb"] if samples else None,
        "rss_mb_end": samples[-1]["rss_mb"] if samples else None,
        "rss_slope_mb_per_min_after_warmup": round(_slope_mb_per_min(warm), 2) if warm else None,
        "samples": samples,
    }


def plot_soak(figures: dict, path: Path) -> None:
    """RSS (blue, left scale) and p95 time to first token (orange, right scale) over time, as a PNG."""
    from PIL import Image, ImageDraw

    width, height, pad = 800, 360, 50
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    samples = figures["samples"]
    t_max = max((s["t_s"] for s in samples), default=1) or 1
    draw.rectangle((pad, pad, width - pad, height - pad), outline="black")
    for key, colour in (("rss_mb", (30, 90, 200)), ("ttft_ms_p95", (230, 120, 20))):
        pts = [(s["t_s"], s[key]) for s in samples if s[key] is not None]
        if not pts:
            continue
        lo, hi = min(v for _, v in pts), max(v for _, v in pts)
        hi = hi if hi > lo else lo + 1
        xy = [
            (pad + (width - 2 * pad) * t / t_max, height - pad - (height - 2 * pad) * (v - lo) / (hi - lo))
            for t, v in pts
        ]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        label = f"{key}: {lo:.0f}..{hi:.0f}"
        draw.text((pad + (0 if key == "rss_mb" else 300), 15), label, fill=colour)
    draw.text(
        (pad, height - pad + 10),
        f"0 s .. {t_max:.0f} s; errors: {figures['errors']}; "
        f"RSS slope after warm-up: {figures['rss_slope_mb_per_min_after_warmup']} MB/min",
        fill="black",
    )
    img.save(path)


def run_soak(
    address: str,
    *,
    minutes: float,
    workers: int = 4,
    api_key: str | None = None,
    server_pid: int | None = None,
    window_s: float = 10.0,
) -> dict:
    return asyncio.run(_soak(address, minutes, workers, api_key, server_pid, window_s))
