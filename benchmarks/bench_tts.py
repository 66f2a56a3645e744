"""Benchmark tts-piper: real-time factor, first audio byte (streamed vs whole), HTTP overhead.

Run: `python benchmarks/bench_tts.py [--quick]`. Writes docs/bench/tts.md.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import arguments, write_report  # noqa: E402
from services.tts_piper.app import build_app  # noqa: E402
from services.tts_piper.backends.piper_voice import PiperEngine  # noqa: E402
from services.tts_piper.settings import Settings  # noqa: E402
from testkit.helpers import PIPER_VOICE, run_server  # noqa: E402
from testkit.texts import REQUEST, SENTENCES  # noqa: E402

ONE = REQUEST
THREE = " ".join(SENTENCES[i] for i in (0, 1, 3))
TEN = " ".join([THREE, SENTENCES[2], *SENTENCES[4:]])


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `fn` over `repeats` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def http_timing(client: httpx.Client, url: str, body: dict[str, object]) -> tuple[float, float]:
    """(time to first body byte, time to last byte) of one POST."""
    start = time.perf_counter()
    first = None
    with client.stream("POST", url, json=body) as resp:
        resp.raise_for_status()
        for _ in resp.iter_raw():
            if first is None:
                first = time.perf_counter() - start
    total = time.perf_counter() - start
    return (first if first is not None else total), total


def main() -> None:
    """Measure, print and write docs/bench/tts.md."""
    args = arguments(__doc__, "tts", "fewer repeats (~30 s)").parse_args()
    repeats = 3 if args.quick else 10

    engine = PiperEngine([PIPER_VOICE])
    voice = engine.voices()[0]
    rate = engine.sample_rate(voice)

    def synth_all(text: str) -> np.ndarray:
        return np.concatenate(list(engine.synthesize(text, voice, 1.0)))

    def first_chunk(text: str) -> None:
        next(iter(engine.synthesize(text, voice, 1.0)))

    rtf_cases = [("1 sentence", ONE), ("3 sentences", THREE)]
    if not args.quick:
        rtf_cases.append(("10 sentences", TEN))
    rtf_rows = []
    for label, text in rtf_cases:
        seconds = median_time(lambda t=text: synth_all(t), repeats)  # type: ignore[misc]
        audio_s = len(synth_all(text)) / rate
        rtf_rows.append((label, audio_s, seconds, seconds / audio_s))

    settings = Settings(voice=str(PIPER_VOICE), download=False, log_json=False)
    cases: dict[str, tuple[str, dict[str, object]]] = {
        "streamed wav (/v1/audio/speech)": (
            "/v1/audio/speech",
            {"input": THREE, "response_format": "wav"},
        ),
        "whole wav (/synthesize)": ("/synthesize", {"text": THREE}),
        "whole flac (/v1/audio/speech)": (
            "/v1/audio/speech",
            {"input": THREE, "response_format": "flac"},
        ),
    }
    if not args.quick:
        cases["streamed pcm (/v1/audio/speech)"] = (
            "/v1/audio/speech",
            {"input": THREE, "response_format": "pcm"},
        )
        cases["whole mp3 (/v1/audio/speech)"] = (
            "/v1/audio/speech",
            {"input": THREE, "response_format": "mp3"},
        )
    runs: dict[str, list[tuple[float, float]]] = {label: [] for label in cases}
    inproc_first_runs: list[float] = []
    inproc_whole_runs: list[float] = []
    load_before = os.getloadavg()[0]
    with run_server(build_app(settings)) as base, httpx.Client(timeout=60) as client:
        for path, body in cases.values():
            http_timing(client, base + path, body)  # warm-up
        # Interleaved rounds: in-process and HTTP see the same machine load, so ratios are fair.
        for _ in range(repeats):
            start = time.perf_counter()
            first_chunk(THREE)
            inproc_first_runs.append(time.perf_counter() - start)
            start = time.perf_counter()
            synth_all(THREE)
            inproc_whole_runs.append(time.perf_counter() - start)
            for label, (path, body) in cases.items():
                runs[label].append(http_timing(client, base + path, body))
    load_after = os.getloadavg()[0]
    http_rows = {
        label: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs))
        for label, rs in runs.items()
    }
    inproc_first = statistics.median(inproc_first_runs)
    inproc_whole = statistics.median(inproc_whole_runs)

    stream_ttfb = http_rows["streamed wav (/v1/audio/speech)"][0]
    whole_ttfb, whole_total = http_rows["whole wav (/synthesize)"]
    lines = [
        "## TTS (tts-piper)",
        "",
        f"Command: `python benchmarks/bench_tts.py{' --quick' if args.quick else ''}`  ",
        f"Machine: {platform.platform()}, {platform.processor() or 'cpu'}, "
        f"{os.cpu_count()} CPUs (shared with other jobs)  ",
        f"Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}  ",
        f"Voice: en_US-joe-medium ({rate} Hz), piper-tts 1.8, median of {repeats} runs  ",
        f"Load average (1 min) before/after the HTTP rounds: {load_before:.1f} / {load_after:.1f}",
        "",
        "### Real-time factor (in-process, synthesis time / audio time)",
        "",
        "| input | audio s | synthesis s | RTF |",
        "|---|---|---|---|",
        *[f"| {lb} | {a:.2f} | {s:.3f} | {r:.3f} |" for lb, a, s, r in rtf_rows],
        "",
        "### Time to first audio byte, 3-sentence input over HTTP (real uvicorn, localhost)",
        "",
        "| response | first byte s | last byte s |",
        "|---|---|---|",
        *[f"| {lb} | {f:.3f} | {t:.3f} |" for lb, (f, t) in http_rows.items()],
        "",
        f"- In-process: first sentence after {inproc_first:.3f} s, "
        f"whole text {inproc_whole:.3f} s.",
        f"- Streaming brings the first byte forward {whole_ttfb / stream_ttfb:.1f}x "
        f"({stream_ttfb:.3f} s vs {whole_ttfb:.3f} s); goal ≤ 0.3 s: "
        f"{'met' if stream_ttfb <= 0.3 else 'NOT met'}.",
        f"- HTTP overhead ratio (whole WAV over HTTP / in-process synthesis): "
        f"{whole_total / inproc_whole:.2f}.",
        f"- Streamed first byte / in-process first sentence: {stream_ttfb / inproc_first:.2f}.",
        "- Bark: no figures — no GPU was lent to this task and no registry carries Bark weights.",
        "",
    ]
    write_report(args.out, "\n".join(lines))


if __name__ == "__main__":
    main()
