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


def _config(fake: str, dead: str) -> dict[str, object]:
    prov = {
        "denoise": ("denoise", fake),
        "stt": ("stt", fake),
        "guard": ("guardrails", fake),
        "llm": ("llm", fake),
        "llm-dead": ("llm", dead),
        "tts": ("tts", fake),
    }
    providers = {k: {"capability": c, "url": u, "timeout_s": 10} for k, (c, u) in prov.items()}

    def voice(llm: list[str]) -> list[dict[str, object]]:
        return [
            {"stage": "denoise", "providers": ["denoise"], "optional": True},
            {"stage": "stt", "providers": ["stt"]},
            {"stage": "guard_input", "providers": ["guard"]},
            {"stage": "llm", "providers": llm},
            {"stage": "guard_output", "providers": ["guard"]},
            {"stage": "tts", "providers": ["tts"]},
        ]

    return {
        "active_pipeline": "voice",
        "providers": providers,
        "pipelines": {"voice": voice(["llm"]), "voice_failover": voice(["llm-dead", "llm"])},
    }


def _cpu_s(pid: int) -> float:
    """User+system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _drive(
    base: str, fake: str, pipeline: str, runs: int, sessions: int, orch_pid: int
) -> dict[str, float]:
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


async def _llm_client_cost(fake: str, n: int) -> tuple[float, float]:
    """p50 ms of one chat call via LangChain ChatOpenAI vs a raw httpx POST (same fake)."""
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_openai import ChatOpenAI

    async with httpx.AsyncClient(timeout=30) as client:
        chat = ChatOpenAI(
            base_url=fake + "/v1",
            api_key="x",
            model="m",  # type: ignore[arg-type]
            max_retries=0,
            http_async_client=client,
        ).bind(temperature=0.7)
        messages = [SystemMessage("You are terse."), HumanMessage("hello there")]
        body = {
            "model": "m",
            "temperature": 0.7,
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "hello there"},
            ],
        }
        lc, raw = [], []
        for _ in range(n):
            t0 = time.perf_counter()
            await chat.ainvoke(messages)
            t1 = time.perf_counter()
            r = await client.post(fake + "/v1/chat/completions", json=body)
            r.json()
            t2 = time.perf_counter()
            lc.append((t1 - t0) * 1000)
            raw.append((t2 - t1) * 1000)
    return _pct(lc, 0.5), _pct(raw, 0.5)


def main() -> None:
    """Run the benchmark and write docs/bench/orchestrator.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=400, help="measured runs per scenario")
    parser.add_argument("--sessions", type=int, default=20, help="concurrent sessions")
    parser.add_argument("--quick", action="store_true", help="200 runs per scenario (<60 s)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench" / "orchestrator.md"))
    args = parser.parse_args()
    runs = 200 if args.quick else args.runs

    env = {**os.environ, "LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1"}
    fake_port, orch_port = free_port(), free_port()
    fake = f"http://127.0.0.1:{fake_port}"
    base = f"http://127.0.0.1:{orch_port}"
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "pipelines.yaml"
        cfg.write_text(yaml.safe_dump(_config(fake, f"http://127.0.0.1:{free_port()}")))
        try:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tests.orchestrator.fakes", "--port", str(fake_port)],
                    cwd=ROOT,
                    env=env,
                )
            )
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "services.orchestrator"],
                    cwd=ROOT,
                    env={
                        **env,
                        "PORT": str(orch_port),
                        "ORCH_PIPELINES_PATH": str(cfg),
                        "ORCH_RELOAD_POLL_S": "0",
                        "ORCHESTRATOR_API_KEYS": "",
                        # Every failover run must pay the refused connection, not skip it.
                        "ORCH_BREAKER_FAILURES": "1000000000",
                    },
                )
            )
            _wait(fake + "/health/ready")
            _wait(base + "/health/ready")
            pid = procs[1].pid
            asyncio.run(_drive(base, fake, "voice", 40, args.sessions, pid))  # warm-up
            asyncio.run(_drive(base, fake, "voice_failover", 40, args.sessions, pid))
            results = {
                ("voice", args.sessions): asyncio.run(
                    _drive(base, fake, "voice", runs, args.sessions, pid)
                ),
                ("voice_failover", args.sessions): asyncio.run(
                    _drive(base, fake, "voice_failover", runs, args.sessions, pid)
                ),
                ("voice", 1): asyncio.run(_drive(base, fake, "voice", runs // 2, 1, pid)),
                ("voice_failover", 1): asyncio.run(
                    _drive(base, fake, "voice_failover", runs // 2, 1, pid)
                ),
            }
            lc_ms, raw_ms = asyncio.run(_llm_client_cost(fake, runs // 2))
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=15)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "## Orchestrator",
        "",
        f"- Command: `python benchmarks/bench_orchestrator.py{' --quick' if args.quick else ''}`",
        f"- Machine: {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, 1-min load average at the end {load:.1f}",
        f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "- Setup: fake stage services (one process) and the real orchestrator (another) on "
        "127.0.0.1; the six-stage voice pipeline (denoise, stt, guard_input, llm via LangChain "
        "ChatOpenAI, guard_output, tts) through `POST /v1/voice` with a 0.5 s WAV. Overhead = "
        "client-measured end-to-end − the fakes' own handler time for that X-Request-ID; it "
        "includes six loopback HTTP hops, multipart/JSON coding and queueing in the "
        "orchestrator. `voice_failover`: the LLM's primary refuses connections (breaker "
        "disabled, so every run pays it), the fallback answers.",
        "",
        "| pipeline | sessions | runs | req/s | e2e p50 ms | e2e p95 ms | stages p50 ms "
        "| overhead p50 ms | overhead p95 ms | orchestrator CPU ms/run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (name, sessions), r in results.items():
        lines.append(
            f"| {name} | {sessions} | {int(r['runs'])} | {r['rps']:.0f} | {r['e2e_p50']:.1f} "
            f"| {r['e2e_p95']:.1f} | {r['stage_p50']:.2f} | {r['over_p50']:.1f} "
            f"| {r['over_p95']:.1f} | {r['cpu_ms']:.1f} |"
        )
    lines.append("")
    for sessions in (args.sessions, 1):
        extra = (
            results[("voice_failover", sessions)]["over_p50"]
            - results[("voice", sessions)]["over_p50"]
        )
        lines.append(
            f"- Failover to a live fallback (primary refuses connections), "
            f"{sessions} session(s): {extra:+.1f} ms at p50 (goal ≤ 5 ms)."
        )
    lines.append(
        f"- One LLM call, sequential, p50: LangChain ChatOpenAI {lc_ms:.2f} ms vs raw "
        f"httpx POST {raw_ms:.2f} ms to the same fake (LangChain + openai SDK cost "
        f"{lc_ms - raw_ms:.2f} ms of the overhead)."
    )
    r20 = results[("voice", args.sessions)]
    lines.append(
        f"- Goal p50 ≤ 5 ms / p95 ≤ 15 ms at {args.sessions} sessions: measured "
        f"{r20['over_p50']:.1f} / {r20['over_p95']:.1f} ms."
    )
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
