"""Live sessions vs one-shot voice turns: when does the user hear the first reply audio?

Starts the offline-profile mesh (as bench_e2e.py does: local processes, free ports; the
voice pipeline with the shipped LLM max_tokens 64) and asks the same spoken questions two
ways, alternating:

- `WS /v1/realtime` through the openai SDK (`services.client.live`): the question streamed
  at real-time pace in 40 ms chunks, then silence; the server's VAD ends the turn. Timed on the
  client from the last speech chunk sent to the first `response.output_audio.delta` (this
  includes the VAD's 500 ms silence wait), and the server's own `speech_stopped` → first
  delta (response.done metadata);
- `POST /v1/voice` with the same recording: the reply audio arrives whole, so the first byte
  the user can hear comes with the whole reply; timed from sending the request to the end.

    python benchmarks/bench_realtime.py [--quick]

Writes docs/bench/realtime.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench_e2e import (  # noqa: E402
    API_KEY,
    client,
    fmt_ms,
    pct,
    private_pipelines,
    running_mesh,
    voice_turn,
)

from services.client.live import RATE, live_turn  # noqa: E402
from services.kit.audio import decode_audio, to_pcm16  # noqa: E402
from testkit.helpers import echo_llm_app, run_server, synth_speech, wav_bytes  # noqa: E402

MAX_TOKENS = 64
QUESTIONS = [
    "What is the capital of France?",
    "Name a colour of the sky.",
    "What is two plus two?",
    "Tell me one fact about the moon.",
    "Say hello in one short sentence.",
]


def main() -> None:
    """Start the mesh, alternate live and one-shot turns, write the report."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="one round of the questions")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench" / "realtime.md"))
    args = ap.parse_args()
    rounds = 1 if args.quick else args.rounds
    clips = {q: wav_bytes(*synth_speech(q, 16000)) for q in QUESTIONS}
    # The live session takes 24 kHz PCM16: the same recordings, resampled once.
    pcm = {q: to_pcm16(decode_audio(wav, RATE).samples) for q, wav in clips.items()}
    live_first: list[float] = []
    live_server: list[float] = []
    live_done: list[float] = []
    voice_whole: list[float] = []
    failures: list[str] = []
    samples: list[tuple[str, str, str]] = []
    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory() as tmp,
        run_server(echo_llm_app(), ready_path="/docs") as echo,
    ):
        pipelines = Path(tmp) / "pipelines.yaml"
        private_pipelines(pipelines, echo, 30.0, None)
        # The shipped answer length (max_tokens 64), not bench_e2e's 32: replies of several
        # sentences are where speaking the first one early pays.
        doc = yaml.safe_load(pipelines.read_text())
        for stage in doc["pipelines"]["voice"]:
            if stage["stage"] == "llm":
                stage["options"]["max_tokens"] = MAX_TOKENS
        pipelines.write_text(yaml.safe_dump(doc, sort_keys=False))
        with running_mesh(pipelines, 30.0, {}) as mesh, client(mesh) as http:
            base = mesh.url("orchestrator")
            # Warm-up: the first turn of each kind loads what is loaded lazily.
            voice_turn(http, clips[QUESTIONS[0]], "warm")
            asyncio.run(live_turn(base, pcm[QUESTIONS[0]], api_key=API_KEY, session_id="warm-rt"))
            for r in range(rounds):
                for i, q in enumerate(QUESTIONS):
                    sid = f"bench-{r}-{i}"
                    turn = voice_turn(http, clips[q], sid + "-v")
                    if turn.status == 200:
                        voice_whole.append(turn.latency_ms)
                    else:
                        failures.append(f"voice: {turn.status} {turn.error[:120]}")
                    res = asyncio.run(
                        live_turn(base, pcm[q], api_key=API_KEY, session_id=sid + "-rt")
                    )
                    first = res.since_speech_end(res.first_audio)
                    if res.status != "completed" or first is None:
                        failures.append(f"live: {res.status or 'no reply'} {res.errors[:2]}")
                        continue
                    live_first.append(first * 1000)
                    done = res.since_speech_end(res.done)
                    if done is not None:
                        live_done.append(done * 1000)
                    if res.speech_stopped is not None and res.first_audio is not None:
                        live_server.append((res.first_audio - res.speech_stopped) * 1000)
                    if r == 0:
                        samples.append((q, res.transcript or "", res.response))
    load_after = os.getloadavg()
    write(
        args.out,
        rounds,
        live_first,
        live_server,
        live_done,
        voice_whole,
        failures,
        samples,
        (load_before, load_after),
    )


def write(
    out: str,
    rounds: int,
    live_first: list[float],
    live_server: list[float],
    live_done: list[float],
    voice_whole: list[float],
    failures: list[str],
    samples: list[tuple[str, str, str]],
    loads: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> None:
    """docs/bench/realtime.md."""

    def row(name: str, values: list[float]) -> str:
        return f"| {name} | {len(values)} | {fmt_ms(pct(values, 50))} | {fmt_ms(pct(values, 95))} |"

    ratio = (
        pct(live_first, 50) / pct(voice_whole, 50) if live_first and voice_whole else float("nan")
    )
    (before, after) = loads
    lines = [
        "## Live sessions (WS /v1/realtime) vs one-shot voice turns",
        "",
        f"`python benchmarks/bench_realtime.py{' --quick' if rounds == 1 else ''}` on "
        f"{platform.node()} ({os.cpu_count()} CPUs, {platform.machine()}, Python "
        f"{platform.python_version()}), {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; load "
        f"average {before[0]:.1f} / {before[1]:.1f} / {before[2]:.1f} before and "
        f"{after[0]:.1f} / {after[1]:.1f} / {after[2]:.1f} after (a shared machine).",
        "",
        f"Offline profile (.env.local), voice pipeline with LLM max_tokens {MAX_TOKENS}; "
        f"{len(QUESTIONS)} "
        f"spoken questions × {rounds} round(s), live and one-shot alternating. Live: the "
        "question streamed at real-time pace (40 ms chunks) through the openai SDK; server "
        "VAD Silero with 500 ms silence. Goal: p50 ≤ 800 ms from end of speech to first audio.",
        "",
        "| measure (ms) | n | p50 | p95 |",
        "|---|---|---|---|",
        row("live: end of speech → first reply audio (client)", live_first),
        row("live: speech_stopped → first reply audio", live_server),
        row("live: end of speech → response.done", live_done),
        row("/v1/voice: request → whole reply (= first audio)", voice_whole),
        "",
        f"Ratio of p50s, live first audio / one-shot whole reply: {ratio:.2f}.",
        "",
    ]
    if failures:
        lines += ["Failures:", "", *[f"- {f}" for f in failures], ""]
    lines += ["First-round transcripts (question → heard → reply):", ""]
    lines += [f"- {q} → {heard!r} → {reply!r}" for q, heard, reply in samples]
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    t0 = time.monotonic()
    main()
    print(f"done in {time.monotonic() - t0:.0f} s")
