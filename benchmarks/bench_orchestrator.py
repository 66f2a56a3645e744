"""Orchestration overhead: end-to-end latency minus the stages' own processing time.

Runs fake stage services (tests/orchestrator/fakes.py) and the real orchestrator
(`python -m services.orchestrator`) as separate processes, drives the six-stage voice
pipeline over HTTP with N concurrent sessions, and subtracts what the fakes report as their
own handler time for each X-Request-ID (the orchestrator forwards the ID to every stage).
Also measures failover: the same pipeline with the LLM's primary refusing connections.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port  # noqa: E402
from tests.orchestrator.fakes import tiny_wav  # noqa: E402


def _wait(url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


def _config(fast: str, staged: str, dead: str) -> dict[str, object]:
    """Pipelines over the instant fake (`voice`) and the one whose calls take time (`staged`)."""
    providers: dict[str, dict[str, object]] = {}
    pipelines: dict[str, object] = {}
    for prefix, url in (("", fast), ("staged-", staged)):
        for cap, name in (
            ("denoise", "denoise"),
            ("stt", "stt"),
            ("guardrails", "guard"),
            ("llm", "llm"),
            ("tts", "tts"),
        ):
            providers[prefix + name] = {"capability": cap, "url": url, "timeout_s": 10}

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


Row = dict[str, float]


async def _drive(
    base: str, fake: str, pipeline: str, runs: int, sessions: int, orch_pid: int
) -> Row:
    wav = tiny_wav(0.5)
    e2e: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=sessions)) as c:

        async def one(sid: str) -> None:
            rid = uuid.uuid4().hex
            t0 = time.perf_counter()
            r = await c.post(
                base + "/v1/voice",
                files={"file": ("a.wav", wav, "audio/wav")},
                data={"session_id": sid, "pipeline": pipeline},
                headers={"X-Request-ID": rid},
            )
            elapsed = (time.perf_counter() - t0) * 1000
            if r.status_code != 200:
                raise RuntimeError(f"run failed: {r.status_code} {r.text[:300]}")
            e2e[rid] = elapsed

        async def session(i: int, n: int) -> None:
            for _ in range(n):
                await one(f"bench-{pipeline}-{i}")

        per = [runs // sessions + (1 if i < runs % sessions else 0) for i in range(sessions)]
        cpu0 = _cpu_s(orch_pid)
        started = time.perf_counter()
        await asyncio.gather(*(session(i, n) for i, n in enumerate(per)))
        wall = time.perf_counter() - started
        cpu_ms = (_cpu_s(orch_pid) - cpu0) * 1000 / max(1, runs)
        processing = (await c.get(fake + "/fake/processing")).json()
    overhead = [e2e[rid] - processing.get(rid, 0.0) for rid in e2e]
    stage_ms = [processing.get(rid, 0.0) for rid in e2e]
    return {
        "runs": len(e2e),
        "rps": len(e2e) / wall,
        "e2e_p50": _pct(list(e2e.values()), 0.5),
        "e2e_p95": _pct(list(e2e.values()), 0.95),
        "stage_p50": _pct(stage_ms, 0.5),
        "over_p50": _pct(overhead, 0.5),
        "over_p95": _pct(overhead, 0.95),
        "over_mean": statistics.fmean(overhead),
        "cpu_ms": cpu_ms,
    }


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _llm_client_cost(fake: str, n: int) -> tuple[float, float]:
    """CPU ms per chat call in this process: LangChain ChatOpenAI vs the orchestrator's own."""
    import aiohttp
    from langchain_openai import ChatOpenAI

    from services.orchestrator.config import ProviderConfig
    from services.orchestrator.conversation import build_messages, to_langchain
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


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env)


def main() -> None:
    """Run the benchmark and write docs/bench/orchestrator.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=400, help="measured runs per scenario")
    parser.add_argument("--sessions", type=int, default=20, help="concurrent sessions")
    parser.add_argument(
        "--stage-ms", type=float, default=25.0, help="time each staged fake call takes"
    )
    parser.add_argument("--quick", action="store_true", help="200 runs per scenario (~1 min)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench" / "orchestrator.md"))
    args = parser.parse_args()
    runs = 200 if args.quick else args.runs
    n = args.sessions

    env = {**os.environ, "LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1"}
    fast_port, staged_port = free_port(), free_port()
    fast = f"http://127.0.0.1:{fast_port}"
    staged = f"http://127.0.0.1:{staged_port}"
    orch_ports = {"http": free_port(), "langchain": free_port()}
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "pipelines.yaml"
        cfg.write_text(yaml.safe_dump(_config(fast, staged, f"http://127.0.0.1:{free_port()}")))
        try:
            fake = ["tests.orchestrator.fakes", "--port"]
            procs.append(_spawn([*fake, str(fast_port)], env))
            procs.append(_spawn([*fake, str(staged_port), "--latency-ms", str(args.stage_ms)], env))
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
                }
                procs.append(_spawn(["services.orchestrator"], orch_env))
            for url in (fast, staged, *(f"http://127.0.0.1:{p}" for p in orch_ports.values())):
                _wait(url + "/health/ready")
            base = f"http://127.0.0.1:{orch_ports['http']}"
            lc_base = f"http://127.0.0.1:{orch_ports['langchain']}"
            pid, lc_pid = procs[2].pid, procs[3].pid

            def drive(url: str, fk: str, pipe: str, count: int, sessions: int, p: int) -> Row:
                return asyncio.run(_drive(url, fk, pipe, count, sessions, p))

            for pipe in ("voice", "voice_failover"):  # warm-up
                drive(base, fast, pipe, 40, n, pid)
                drive(lc_base, fast, pipe, 20, 1, lc_pid)
            drive(base, staged, "staged", 40, n, pid)
            results: list[tuple[str, str, int, Row]] = [
                ("http", "voice", 1, drive(base, fast, "voice", runs // 2, 1, pid)),
                (
                    "http",
                    "voice_failover",
                    1,
                    drive(base, fast, "voice_failover", runs // 2, 1, pid),
                ),
                ("langchain", "voice", 1, drive(lc_base, fast, "voice", runs // 2, 1, lc_pid)),
                ("http", "staged", n, drive(base, staged, "staged", runs, n, pid)),
                (
                    "http",
                    "staged_failover",
                    n,
                    drive(base, staged, "staged_failover", runs, n, pid),
                ),
                ("http", "voice", n, drive(base, fast, "voice", runs, n, pid)),
            ]
            lc_cpu, own_cpu = asyncio.run(_llm_client_cost(fast, runs))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=15)
    _report(args, results, lc_cpu, own_cpu)


def _report(
    args: argparse.Namespace,
    results: list[tuple[str, str, int, Row]],
    lc_cpu: float,
    own_cpu: float,
) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    n = args.sessions
    lines = [
        "## Orchestrator",
        "",
        f"- Command: `python benchmarks/bench_orchestrator.py{' --quick' if args.quick else ''}`",
        f"- Machine: {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, 1-min load average at the end {load:.1f}",
        f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "- Setup: everything on this one machine — the load generator, the real orchestrator "
        "(`python -m services.orchestrator`, one process) and fake stage services "
        "(tests/orchestrator/fakes.py, FastAPI under uvicorn, each in its own process) on "
        "127.0.0.1. The six-stage voice pipeline (denoise, stt, guard_input, llm, guard_output, "
        "tts) through `POST /v1/voice` with a 0.5 s WAV, every session sending its next turn as "
        "soon as the last one returns. `voice`: fakes answer at once. `staged`: every fake "
        f"call takes {args.stage_ms:g} ms ({6 * args.stage_ms:g} ms of stage time per run — "
        "fast local model servers). Overhead = client-measured end-to-end − the fakes' own "
        "time for that X-Request-ID (measured around their whole ASGI app); it holds six "
        "loopback HTTP hops, multipart/JSON coding, the orchestrator's work and any queueing "
        "for the CPU. `_failover`: the LLM's primary refuses connections (breaker disabled, "
        "so every run pays it); the fallback answers. LLM client: `http` (default) or "
        "`langchain` (`ORCH_LLM_CLIENT`).",
        "",
        "| LLM client | pipeline | sessions | runs | runs/s | e2e p50 ms | e2e p95 ms "
        "| stages p50 ms | overhead p50 ms | overhead p95 ms | orchestrator CPU ms/run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_key = {(c, p, s): r for c, p, s, r in results}
    for client, name, sessions, r in results:
        lines.append(
            f"| {client} | {name} | {sessions} | {int(r['runs'])} | {r['rps']:.0f} "
            f"| {r['e2e_p50']:.1f} | {r['e2e_p95']:.1f} | {r['stage_p50']:.2f} "
            f"| {r['over_p50']:.1f} | {r['over_p95']:.1f} | {r['cpu_ms']:.1f} |"
        )
    lines.append("")
    for base, sessions in (("voice", 1), ("staged", n)):
        extra = (
            by_key[("http", f"{base}_failover", sessions)]["over_p50"]
            - by_key[("http", base, sessions)]["over_p50"]
        )
        lines.append(
            f"- Failover to a live fallback (primary refuses connections), `{base}`, "
            f"{sessions} session(s): {extra:+.1f} ms at p50 (goal ≤ 5 ms)."
        )
    lines.append(
        f"- One LLM call, CPU in the caller: LangChain ChatOpenAI {lc_cpu:.2f} ms vs the "
        f"orchestrator's own aiohttp client {own_cpu:.2f} ms."
    )
    goal = by_key[("http", "staged", n)]
    lines.append(
        f"- Goal p50 ≤ 5 ms / p95 ≤ 15 ms at {n} sessions (`staged`): measured "
        f"{goal['over_p50']:.1f} / {goal['over_p95']:.1f} ms."
    )
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
