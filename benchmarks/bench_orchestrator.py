"""Orchestration overhead: end-to-end latency minus the stages' own processing time.

Runs fake stage services (testkit/fakes/stages.py) and the real orchestrator
(`python -m services.orchestrator`) as separate processes, drives the six-stage voice
pipeline over HTTP with N concurrent sessions, and subtracts what the fakes report as their
own handler time for each X-Request-ID (the orchestrator forwards the ID to every stage).
Also measures failover: the same pipeline with the LLM's primary refusing connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import write_report  # noqa: E402
from services.kit.app import freeze_heap  # noqa: E402
from testkit.fakes.stages import tiny_wav  # noqa: E402
from testkit.helpers import free_port, run_process  # noqa: E402

CAPABILITIES = {
    "denoise": "denoise",
    "stt": "stt",
    "guard": "guardrails",
    "llm": "llm",
    "tts": "tts",
}


def _config(fast: str, staged: dict[str, str], dead: str) -> dict[str, object]:
    """Pipelines over the instant fake (`voice`) and the fakes whose calls take time (`staged`,
    one process per stage service as in the real mesh)."""
    providers: dict[str, dict[str, object]] = {}
    pipelines: dict[str, object] = {}
    for prefix, urls in (("", dict.fromkeys(CAPABILITIES, fast)), ("staged-", staged)):
        for name, cap in CAPABILITIES.items():
            providers[prefix + name] = {"capability": cap, "url": urls[name], "timeout_s": 10}

        def voice(llm: list[str], p: str = prefix) -> list[dict[str, object]]:
            return [
                {"stage": "denoise", "providers": [p + "denoise"], "optional": True},
                {"stage": "stt", "providers": [p + "stt"]},
                {"stage": "guard_input", "providers": [p + "guard"]},
                {"stage": "llm", "providers": llm},
                {"stage": "guard_output", "providers": [p + "guard"]},
                {"stage": "tts", "providers": [p + "tts"]},
            ]

        name = "voice" if not prefix else "staged"
        pipelines[name] = voice([prefix + "llm"])
        pipelines[name + "_failover"] = voice(["llm-dead", prefix + "llm"])
    providers["llm-dead"] = {"capability": "llm", "url": dead, "timeout_s": 10}
    return {"active_pipeline": "voice", "providers": providers, "pipelines": pipelines}


def _cpu_s(pid: int) -> float:
    """User+system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _multipart(session_id: str, pipeline: str, wav: bytes) -> tuple[bytes, str]:
    """A /v1/voice form (session_id, pipeline, file) as bytes and its Content-Type."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in (("session_id", session_id), ("pipeline", pipeline))
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n".encode()
        + wav
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


Row = dict[str, float]


@dataclass
class Samples:
    """One round of one scenario: per-run figures (ms) and the round's totals."""

    e2e: list[float]
    overhead: list[float]
    stage_ms: list[float]
    hops: list[float]
    wall_s: float
    cpu_ms: float  # orchestrator CPU over the whole round


JITTER = 0.2  # staged fake calls take ms × [0.8, 1.2]
# (LLM client, pipeline, ms per stage call, concurrent sessions, measurements)
Result = tuple[str, str, float, int, Row]


async def _drive(
    base: str,
    fakes: list[str],
    pipeline: str,
    runs: int,
    sessions: int,
    orch_pid: int,
    spread_s: float = 0.0,
) -> Samples:
    rng = random.Random(sessions)
    wav = tiny_wav(0.5)
    e2e: dict[str, float] = {}
    recorded: dict[str, float] = {}  # the stage latencies the orchestrator itself recorded
    # The load generator uses aiohttp: its own HTTP cost lands in the measured overhead, and
    # httpx's is ~3 ms more per run on this box than aiohttp's (measured both ways).
    connector = aiohttp.TCPConnector(limit=sessions)
    async with aiohttp.ClientSession(connector=connector) as c:

        async def one(form: bytes, content_type: str) -> None:
            rid = uuid.uuid4().hex
            headers = {"X-Request-ID": rid, "Content-Type": content_type}
            t0 = time.perf_counter()
            async with c.post(base + "/v1/voice", data=form, headers=headers) as r:
                body = await r.read()
            elapsed = (time.perf_counter() - t0) * 1000
            if r.status != 200:
                raise RuntimeError(f"run failed: {r.status} {body[:300]!r}")
            e2e[rid] = elapsed
            recorded[rid] = sum(st["latency_ms"] for st in json.loads(body)["stages"])

        async def session(i: int, n: int) -> None:
            # Independent users do not start in lock-step: spread the first turns over one
            # run's expected time, or all sessions hit every stage in the same instant.
            await asyncio.sleep(rng.uniform(0, spread_s))
            # A session's form never changes: encode it once, so the load generator's own CPU
            # (it shares the cores with what it measures) stays out of the overhead.
            form, content_type = _multipart(f"bench-{pipeline}-{i}", pipeline, wav)
            for _ in range(n):
                await one(form, content_type)

        per = [runs // sessions + (1 if i < runs % sessions else 0) for i in range(sessions)]
        cpu0 = _cpu_s(orch_pid)
        started = time.perf_counter()
        await asyncio.gather(*(session(i, n) for i, n in enumerate(per)))
        wall = time.perf_counter() - started
        cpu_ms = (_cpu_s(orch_pid) - cpu0) * 1000
        processing: dict[str, float] = {}
        for fake in fakes:
            async with c.get(fake + "/fake/processing") as resp:
                spent = await resp.json()
            for rid, ms in spent.items():
                processing[rid] = processing.get(rid, 0.0) + ms
    # Overhead split: time between the orchestrator's stage timers and the fakes' own time
    # (loopback hops, the fakes' HTTP parsing, waiting for a CPU) vs the rest (the client's
    # hop in and out, the orchestrator's own work between stages).
    return Samples(
        e2e=list(e2e.values()),
        overhead=[e2e[rid] - processing.get(rid, 0.0) for rid in e2e],
        stage_ms=[processing.get(rid, 0.0) for rid in e2e],
        hops=[recorded[rid] - processing.get(rid, 0.0) for rid in e2e],
        wall_s=wall,
        cpu_ms=cpu_ms,
    )


def _summary(rounds: list[Samples]) -> Row:
    """Percentiles over every run of every round (rounds of one scenario are pooled)."""
    e2e = [v for r in rounds for v in r.e2e]
    overhead = [v for r in rounds for v in r.overhead]
    return {
        "rounds": len(rounds),
        "runs": len(e2e),
        "rps": len(e2e) / sum(r.wall_s for r in rounds),
        "e2e_p50": _pct(e2e, 0.5),
        "e2e_p95": _pct(e2e, 0.95),
        "stage_p50": _pct([v for r in rounds for v in r.stage_ms], 0.5),
        "over_p50": _pct(overhead, 0.5),
        "over_p95": _pct(overhead, 0.95),
        "over_mean": statistics.fmean(overhead),
        "hops_p50": _pct([v for r in rounds for v in r.hops], 0.5),
        "cpu_ms": sum(r.cpu_ms for r in rounds) / len(e2e),
        # The spread of the per-round medians says how much the box drifted meanwhile.
        "round_p50_min": min(_pct(r.overhead, 0.5) for r in rounds),
        "round_p50_max": max(_pct(r.overhead, 0.5) for r in rounds),
    }


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _llm_client_cost(fake: str, n: int) -> tuple[float, float]:
    """CPU ms per chat call in this process: LangChain ChatOpenAI vs the orchestrator's own."""
    from langchain_openai import ChatOpenAI

    from services.orchestrator.backends.llm_langchain import to_langchain
    from services.orchestrator.config import ProviderConfig
    from services.orchestrator.conversation import build_messages
    from services.orchestrator.stages import StageClient, make_session

    messages = build_messages("You are terse.", [], "hello there")
    prov = ProviderConfig(capability="llm", url=fake)
    async with httpx.AsyncClient(timeout=30) as client:
        chat = ChatOpenAI(
            base_url=fake + "/v1",
            api_key="x",
            model="m",  # type: ignore[arg-type]
            max_retries=0,
            http_async_client=client,
        ).bind(temperature=0.7)
        session: aiohttp.ClientSession = make_session()
        stages = StageClient(session)
        try:
            for _ in range(20):  # warm both pools
                await chat.ainvoke(to_langchain(messages))
                await stages.chat(prov, messages, {"temperature": 0.7}, 30)
            t0 = _self_cpu_s()
            for _ in range(n):
                await chat.ainvoke(to_langchain(messages))
            t1 = _self_cpu_s()
            for _ in range(n):
                await stages.chat(prov, messages, {"temperature": 0.7}, 30)
            t2 = _self_cpu_s()
        finally:
            await session.close()
    return (t1 - t0) * 1000 / n, (t2 - t1) * 1000 / n


def main() -> None:
    """Run the benchmark and write docs/bench/orchestrator.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=400, help="measured runs per scenario")
    parser.add_argument("--sessions", type=int, default=20, help="concurrent sessions")
    parser.add_argument(
        "--stage-ms",
        type=float,
        nargs="+",
        default=[25.0, 100.0],
        help="times each staged fake call takes (one scenario pair per value)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of each staged scenario"
    )
    parser.add_argument(
        "--quick", action="store_true", help="200 runs per scenario and round (~1 min)"
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench" / "orchestrator.md"))
    args = parser.parse_args()
    runs = 200 if args.quick else args.runs
    n = args.sessions
    # The load generator is a Python process too: a full collection in it (measured: up to
    # 70 ms) would be booked as orchestration overhead for every request in flight.
    freeze_heap()

    env = {**os.environ, "LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1"}
    fast_port = free_port()
    fast = f"http://127.0.0.1:{fast_port}"
    staged_ports = {name: free_port() for name in CAPABILITIES}
    staged = {name: f"http://127.0.0.1:{port}" for name, port in staged_ports.items()}
    orch_ports = {"http": free_port(), "langchain": free_port()}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        cfg = Path(tmp) / "pipelines.yaml"
        cfg.write_text(yaml.safe_dump(_config(fast, staged, f"http://127.0.0.1:{free_port()}")))

        def spawn(args: list[str], url: str, env: dict[str, str]) -> int:
            cmd = [sys.executable, "-m", *args]
            return stack.enter_context(run_process(cmd, url + "/health/ready", env=env)).pid

        fake = ["testkit.fakes.stages", "--port"]
        spawn([*fake, str(fast_port)], fast, env)
        for name, port in staged_ports.items():
            spawn([*fake, str(port)], staged[name], env)
        pids = {}
        for client, port in orch_ports.items():
            orch_env = {
                **env,
                "PORT": str(port),
                "ORCH_PIPELINES_PATH": str(cfg),
                "ORCH_RELOAD_POLL_S": "0",
                "ORCHESTRATOR_API_KEYS": "",
                "ORCH_LLM_CLIENT": client,
                # Every failover run must pay the refused connection, not skip it.
                "ORCH_BREAKER_FAILURES": "1000000000",
                # The fakes' audio is a tone (no SNR estimate): keep the denoise call measured.
                "ORCH_DENOISE_MIN_SNR_DB": "",
            }
            pids[client] = spawn(["services.orchestrator"], f"http://127.0.0.1:{port}", orch_env)
        base = f"http://127.0.0.1:{orch_ports['http']}"
        lc_base = f"http://127.0.0.1:{orch_ports['langchain']}"
        pid, lc_pid = pids["http"], pids["langchain"]

        instant, staged_fakes = [fast], list(staged.values())

        def drive(
            url: str, fakes: list[str], pipe: str, count: int, sessions: int, p: int, ms: float = 0
        ) -> Samples:
            spread = 6 * ms / 1000  # one run's stage time
            return asyncio.run(_drive(url, fakes, pipe, count, sessions, p, spread))

        for pipe in ("voice", "voice_failover"):  # warm-up
            drive(base, instant, pipe, 40, n, pid)
            drive(lc_base, instant, pipe, 20, 1, lc_pid)
        drive(base, staged_fakes, "staged", 40, n, pid)
        half = runs // 2
        one = [drive(base, instant, "voice", half, 1, pid)]
        results: list[Result] = [
            ("http", "voice", 0, 1, _summary(one)),
            (
                "http",
                "voice_failover",
                0,
                1,
                _summary([drive(base, instant, "voice_failover", half, 1, pid)]),
            ),
            (
                "langchain",
                "voice",
                0,
                1,
                _summary([drive(lc_base, instant, "voice", half, 1, lc_pid)]),
            ),
            ("http", "voice", 0, n, _summary([drive(base, instant, "voice", runs, n, pid)])),
        ]
        for ms in args.stage_ms:
            for url in staged.values():
                params = {"ms": ms, "jitter": JITTER}
                httpx.post(url + "/fake/latency", params=params).raise_for_status()
            # Rounds alternate the plain and the failover pipeline, so a drift of the shared
            # box over the minutes of a scenario lands on both alike.
            rounds: dict[str, list[Samples]] = {"staged": [], "staged_failover": []}
            for _ in range(args.rounds):
                for pipe, got in rounds.items():
                    got.append(drive(base, staged_fakes, pipe, runs, n, pid, ms))
            for pipe, got in rounds.items():
                results.append(("http", pipe, ms, n, _summary(got)))
        lc_cpu, own_cpu = asyncio.run(_llm_client_cost(fast, runs))
    _report(args, results, lc_cpu, own_cpu)


def _report(args: argparse.Namespace, results: list[Result], lc_cpu: float, own_cpu: float) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    n = args.sessions
    lines = [
        "## Orchestrator",
        "",
        f"- Command: `python benchmarks/bench_orchestrator.py{' --quick' if args.quick else ''}`",
        f"- Machine: {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, 1-min load average at the end {load:.1f}",
        f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "- Setup: everything on this one machine — the load generator (aiohttp), the real "
        "orchestrator "
        "(`python -m services.orchestrator`, one process) and fake stage services "
        "(testkit/fakes/stages.py, FastAPI under uvicorn) on 127.0.0.1. The six-stage "
        "voice pipeline (denoise, stt, guard_input, llm, guard_output, tts) through "
        "`POST /v1/voice` with a 0.5 s WAV, every session sending its next turn as soon as the "
        "last one returns. `voice`: one fake process answers every stage at once. `staged`: "
        "one fake process per stage service, as in the mesh, every call taking the stated "
        "time ±20 % (uniform), sessions starting at random offsets within one run's time. "
        "Overhead = client-measured end-to-end − the fakes' own time for that "
        "X-Request-ID (measured around their whole ASGI app); it holds six loopback HTTP hops, "
        "multipart/JSON coding, the orchestrator's work and any queueing for the CPU; "
        "'stage hops' is the part between the orchestrator's own stage timers and the fakes' "
        "time (loopback, the fakes' HTTP parsing, waiting for a CPU). "
        "`_failover`: the LLM's primary refuses connections (breaker disabled, so every run "
        "pays it); the fallback answers. LLM client: `http` (default) or `langchain` "
        "(`ORCH_LLM_CLIENT`). Staged scenarios run in interleaved rounds (plain, failover, "
        "plain, …) and their percentiles pool every run of every round; 'round p50s' is the "
        "range of the per-round medians. The load generator encodes each session's form once "
        "and, like every served process here, freezes its start-up heap (`gc.freeze`), so "
        "neither its own encoding nor a full garbage collection in it counts as overhead. "
        "`voice` with 20 sessions and 0 ms stages is a capacity figure, not a per-run cost: "
        "with nothing to wait for, 20 closed-loop sessions keep both cores busy and each run "
        "waits for the 19 others (latency ≈ sessions ÷ runs/s).",
        "",
        "| LLM client | pipeline | ms per stage call | sessions | rounds × runs | runs/s "
        "| e2e p50 ms | e2e p95 ms | stages p50 ms | overhead p50 ms | overhead p95 ms "
        "| round p50s ms | of which stage hops p50 ms | orchestrator CPU ms/run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_key = {(c, p, ms, s): r for c, p, ms, s, r in results}
    for client, name, ms, sessions, r in results:
        lines.append(
            f"| {client} | {name} | {ms:g} | {sessions} "
            f"| {int(r['rounds'])} × {int(r['runs'] / r['rounds'])} | {r['rps']:.0f} "
            f"| {r['e2e_p50']:.1f} | {r['e2e_p95']:.1f} | {r['stage_p50']:.2f} "
            f"| {r['over_p50']:.1f} | {r['over_p95']:.1f} "
            f"| {r['round_p50_min']:.1f}–{r['round_p50_max']:.1f} | {r['hops_p50']:.1f} "
            f"| {r['cpu_ms']:.1f} |"
        )
    lines.append("")
    pairs = [("voice", 0.0, 1)] + [("staged", ms, n) for ms in args.stage_ms]
    for pipe, ms, sessions in pairs:
        base, failover = (
            by_key[("http", pipe, ms, sessions)],
            by_key[("http", f"{pipe}_failover", ms, sessions)],
        )
        lines.append(
            f"- Failover to a live fallback (primary refuses connections), `{pipe}` "
            f"({ms:g} ms/stage, {sessions} session(s)): "
            f"{failover['over_p50'] - base['over_p50']:+.1f} ms at p50 (goal ≤ 5 ms: "
            + ("met)." if failover["over_p50"] - base["over_p50"] <= 5 else "NOT met).")
        )
    lines.append(
        f"- One LLM call, CPU in the caller: LangChain ChatOpenAI {lc_cpu:.2f} ms vs the "
        f"orchestrator's own aiohttp client {own_cpu:.2f} ms."
    )
    for ms in args.stage_ms:
        goal = by_key[("http", "staged", ms, n)]
        lines.append(
            f"- Goal p50 ≤ 5 ms / p95 ≤ 15 ms at {n} sessions, {ms:g} ms per stage call: "
            f"measured {goal['over_p50']:.1f} / {goal['over_p95']:.1f} ms — "
            + ("met." if goal["over_p50"] <= 5 and goal["over_p95"] <= 15 else "NOT met.")
        )
    write_report(Path(args.out), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
