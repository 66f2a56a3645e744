"""Our Wyoming endpoints side by side with the reference servers Home Assistant users run.

STT: our stt service vs `wyoming-faster-whisper`, same Whisper model directory, compute type,
beam size, threads and language; time from `audio-stop` to `transcript`. TTS: our tts-piper
vs `wyoming-piper`, same Piper voice file; time from `synthesize` to the first audio-chunk
and to `audio-stop`. Every server runs in its own process; runs alternate ours/theirs so load
on the shared machine hits both alike; ratios are ours / theirs (below 1 = ours faster).

Run: `python benchmarks/bench_wyoming.py [--quick]` (needs `pip install -e .[wyoming-bench]`).
Writes docs/bench/wyoming.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.util
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.tts import Synthesize

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's `services`, not another installed copy

from benchmarks.common import write_report  # noqa: E402

MODELS = ROOT / ".models"
WHISPER = MODELS / "whisper-base"
VOICE = MODELS / "piper" / "en_US-joe-medium.onnx"
COMMAND = "Turn on the kitchen lights and set the thermostat to twenty one degrees."
REPLY = (
    "The kitchen lights are on. The thermostat is now set to twenty one degrees. "
    "Is there anything else I can do for you?"
)
THREADS = 2
HOST = "127.0.0.1"


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def speech_16k(text: str) -> bytes:
    """`text` spoken by the Piper voice, as 16 kHz 16-bit mono PCM (what Home Assistant sends)."""
    from piper import PiperVoice
    from scipy.signal import resample_poly

    voice = PiperVoice.load(str(VOICE))
    chunks = list(voice.synthesize(text))
    audio = np.concatenate([c.audio_float_array for c in chunks])
    rate = int(chunks[0].sample_rate)
    audio16 = resample_poly(audio, 16000 // np.gcd(16000, rate), rate // np.gcd(16000, rate))
    pcm: bytes = (np.clip(audio16, -1, 1) * 32767).round().astype("<i2").tobytes()
    return pcm


@contextlib.contextmanager
def process(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server process for the duration of the block."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def wait_info(port: int, proc: subprocess.Popen[bytes], log: Path, wait_s: float) -> None:
    """Until the server answers `describe` with `info` (ours answers `error` while loading)."""
    deadline = time.monotonic() + wait_s
    while True:
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            async with AsyncTcpClient(HOST, port, connect_timeout=2, read_timeout=5) as c:
                await c.write_event(Describe().event())
                event = await c.read_event()
                if event is not None and event.type == "info":
                    return
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = await asyncio.to_thread(log.read_text)
            raise RuntimeError(f"server on {port} not ready: {tail[-1500:]}")
        await asyncio.sleep(0.5)


async def time_stt(port: int, pcm: bytes) -> tuple[float, str]:
    """Seconds from audio-stop to transcript, and the text."""
    async with AsyncTcpClient(HOST, port, read_timeout=300) as c:
        await c.write_event(Transcribe(language="en").event())
        await c.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for i in range(0, len(pcm), 2048):  # 1024-sample chunks
            await c.write_event(AudioChunk(16000, 2, 1, pcm[i : i + 2048]).event())
        await c.write_event(AudioStop().event())
        started = time.perf_counter()
        while True:
            event: Event | None = await c.read_event()
            if event is None:
                raise RuntimeError("connection closed before the transcript")
            if event.type == "transcript":
                return time.perf_counter() - started, str(event.data.get("text", ""))
            if event.type == "error":
                raise RuntimeError(f"error event: {event.data}")


async def time_tts(port: int, text: str) -> tuple[float, float, float]:
    """Seconds to the first audio-chunk and to audio-stop, and the audio seconds received."""
    async with AsyncTcpClient(HOST, port, read_timeout=300) as c:
        started = time.perf_counter()
        await c.write_event(Synthesize(text=text).event())
        first: float | None = None
        samples = 0
        while True:
            event = await c.read_event()
            if event is None:
                raise RuntimeError("connection closed before audio-stop")
            if event.type == "audio-chunk":
                if first is None:
                    first = time.perf_counter() - started
                chunk = AudioChunk.from_event(event)
                samples += chunk.samples
                rate = chunk.rate
            elif event.type == "audio-stop":
                assert first is not None
                return first, time.perf_counter() - started, samples / rate
            elif event.type == "error":
                raise RuntimeError(f"error event: {event.data}")


@dataclass
class Series:
    """Timings of one measure for both servers, run pairs in order."""

    ours: list[float] = field(default_factory=list)
    theirs: list[float] = field(default_factory=list)

    def row(self, name: str) -> str:
        """One markdown table row: medians, ratio of medians, spread of per-pair ratios."""
        pairs = [a / b for a, b in zip(self.ours, self.theirs, strict=True)]
        mo, mt = statistics.median(self.ours), statistics.median(self.theirs)
        return (
            f"| {name} | {mo * 1000:.0f} | {mt * 1000:.0f} | **{mo / mt:.2f}** | "
            f"{statistics.median(pairs):.2f} ({min(pairs):.2f}–{max(pairs):.2f}) |"
        )


def base_env() -> dict[str, str]:
    """The environment both sides run in: offline, same thread count."""
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(THREADS)})
    return env


def ours_base_env(env: dict[str, str], prefix: str, wyoming_port: int) -> dict[str, str]:
    """Our service's environment: a free HTTP port (only Wyoming is timed), its Wyoming port."""
    return {
        **env,
        "PORT": str(free_port()),
        "HOST": HOST,
        "WYOMING_PORT": str(wyoming_port),
        f"{prefix}_WYOMING_HOST": HOST,
        "LOG_LEVEL": "WARNING",
    }


async def bench_stt(runs: int, tmp: Path) -> tuple[Series, list[str]]:
    """Alternating transcriptions of one spoken command."""
    pcm = speech_16k(COMMAND)
    ours_port, theirs_port = free_port(), free_port()
    env = base_env()
    ours_env = {
        **ours_base_env(env, "STT", ours_port),
        "STT_MODEL": str(WHISPER),
        "STT_COMPUTE_TYPE": "int8",
        "STT_DEVICE": "cpu",
        "STT_CPU_THREADS": str(THREADS),
        "STT_BEAM_SIZE": "5",
    }
    theirs_cmd = [
        sys.executable,
        "-m",
        "wyoming_faster_whisper",
        f"--uri=tcp://{HOST}:{theirs_port}",
        f"--model={WHISPER}",
        "--stt-library=faster-whisper",
        f"--data-dir={tmp}",
        "--local-files-only",
        "--device=cpu",
        "--compute-type=int8",
        f"--cpu-threads={THREADS}",
        "--beam-size=5",
        "--language=en",
    ]
    series = Series()
    texts: list[str] = []
    with (
        process([sys.executable, "-m", "services.stt"], ours_env, tmp / "ours-stt.log") as ours,
        process(theirs_cmd, env, tmp / "theirs-stt.log") as theirs,
    ):
        await wait_info(ours_port, ours, tmp / "ours-stt.log", 300)
        await wait_info(theirs_port, theirs, tmp / "theirs-stt.log", 300)
        for port in (ours_port, theirs_port):  # warm-up: first calls allocate buffers
            await time_stt(port, pcm)
        for i in range(runs):
            order = [(ours_port, series.ours), (theirs_port, series.theirs)]
            for port, out in order if i % 2 == 0 else order[::-1]:
                seconds, text = await time_stt(port, pcm)
                out.append(seconds)
                if i == 0:
                    texts.append(text)
    return series, texts


async def bench_tts(runs: int, tmp: Path) -> tuple[Series, Series, float]:
    """Alternating syntheses of a three-sentence reply."""
    ours_port, theirs_port = free_port(), free_port()
    env = base_env()
    ours_env = {
        **ours_base_env(env, "PIPER", ours_port),
        "PIPER_VOICE": str(VOICE),
        "PIPER_DOWNLOAD": "false",
    }
    theirs_cmd = [
        sys.executable,
        "-m",
        "wyoming_piper",
        f"--uri=tcp://{HOST}:{theirs_port}",
        f"--voice={VOICE.stem}",
        f"--data-dir={VOICE.parent}",
        f"--download-dir={tmp}",
    ]
    first, total = Series(), Series()
    audio_s = 0.0
    with (
        process([sys.executable, "-m", "services.tts_piper"], ours_env, tmp / "ours-tts.log") as o,
        process(theirs_cmd, env, tmp / "theirs-tts.log") as t,
    ):
        await wait_info(ours_port, o, tmp / "ours-tts.log", 120)
        await wait_info(theirs_port, t, tmp / "theirs-tts.log", 120)
        for port in (ours_port, theirs_port):  # warm-up: the reference loads its voice lazily
            await time_tts(port, REPLY)
        for i in range(runs):
            order = [(ours_port, "ours"), (theirs_port, "theirs")]
            for port, who in order if i % 2 == 0 else order[::-1]:
                f, tot, audio_s = await time_tts(port, REPLY)
                getattr(first, who).append(f)
                getattr(total, who).append(tot)
    return first, total, audio_s


@contextlib.contextmanager
def serve_in_thread(app: object, port: int) -> Iterator[None]:
    """A real uvicorn for `app` in a thread of this process, until its startup has finished."""
    import threading

    import uvicorn

    config = uvicorn.Config(app, host=HOST, port=port, log_config=None)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 300
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://{HOST}:{port}/health/ready", timeout=2).status_code == 200:
                break
        if time.monotonic() > deadline:
            raise RuntimeError("in-process server not ready")
        time.sleep(0.2)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(15)


async def _timed(fn: Callable[..., object], *args: object) -> float:
    """Seconds a blocking call takes in a worker thread (as the services run their engines)."""
    started = time.perf_counter()
    await asyncio.to_thread(fn, *args)
    return time.perf_counter() - started


async def bench_overhead(runs: int) -> tuple[Series, Series]:
    """Our Wyoming path against calling the same loaded engine directly, in one process.

    ours = through the Wyoming endpoint; theirs = the bare engine call, so the ratio is what
    our server adds (framing, conversion, queue, chunking) with the engine held equal.
    """
    from services.stt.app import build_app as build_stt
    from services.stt.deps import Deps
    from services.stt.engine import TranscribeOptions
    from services.stt.settings import Settings as SttSettings
    from services.tts_piper.app import build_app as build_tts
    from services.tts_piper.deps import Deps as TtsDeps
    from services.tts_piper.settings import Settings as TtsSettings

    stt_series, tts_series = Series(), Series()
    pcm = speech_16k(COMMAND)
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    wy = free_port()
    stt_app = build_stt(
        SttSettings(
            model=str(WHISPER),
            compute_type="int8",
            device="cpu",
            cpu_threads=THREADS,
            wyoming_host=HOST,
            wyoming_port=wy,
            log_level="WARNING",
        )
    )
    with serve_in_thread(stt_app, free_port()):
        engine = stt_app.state.service.require(Deps).service.engine
        options = TranscribeOptions(language="en", beam_size=5)
        await time_stt(wy, pcm)
        for i in range(runs):
            if i % 2:  # alternate which goes first, as for the reference servers
                stt_series.theirs.append(await _timed(engine.transcribe, samples, options))
            stt_series.ours.append((await time_stt(wy, pcm))[0])
            if not i % 2:
                stt_series.theirs.append(await _timed(engine.transcribe, samples, options))
    wy = free_port()
    tts_app = build_tts(
        TtsSettings(
            voice=str(VOICE),
            download=False,
            wyoming_host=HOST,
            wyoming_port=wy,
            log_level="WARNING",
        )
    )
    with serve_in_thread(tts_app, free_port()):
        voice_engine = tts_app.state.service.require(TtsDeps).service.engine
        voice = voice_engine.voices()[0]
        await time_tts(wy, REPLY)

        def speak() -> list[np.ndarray]:
            return list(voice_engine.synthesize(REPLY, voice, 1.0))

        for i in range(runs):
            if i % 2:
                tts_series.theirs.append(await _timed(speak))
            tts_series.ours.append((await time_tts(wy, REPLY))[1])
            if not i % 2:
                tts_series.theirs.append(await _timed(speak))
    return stt_series, tts_series


def main() -> int:
    """Measure both pairs, print and write the markdown section."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="5 pairs per measure instead of 15")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "wyoming.md")
    args = ap.parse_args()
    missing = [
        m for m in ("wyoming_faster_whisper", "wyoming_piper") if not importlib.util.find_spec(m)
    ]
    if missing:
        print(f"missing {missing}: pip install -e '.[wyoming-bench]'", file=sys.stderr)
        return 1
    runs = 5 if args.quick else 15
    with tempfile.TemporaryDirectory() as d:
        stt, texts = asyncio.run(bench_stt(runs, Path(d)))
        first, total, audio_s = asyncio.run(bench_tts(runs, Path(d)))
    stt_over, tts_over = asyncio.run(bench_overhead(max(4, runs // 2)))
    versions = {
        m: subprocess.run(
            [sys.executable, "-m", "pip", "show", m], capture_output=True, text=True, check=False
        )
        .stdout.split("Version: ")[-1]
        .split("\n")[0]
        for m in (
            "wyoming",
            "wyoming-faster-whisper",
            "wyoming-piper",
            "faster-whisper",
            "piper-tts",
        )
    }
    load = os.getloadavg()
    cmd = "python benchmarks/bench_wyoming.py" + (" --quick" if args.quick else "")
    lines = [
        "## Wyoming endpoints vs the reference servers",
        "",
        f"`{cmd}` on {platform.node()} ({os.cpu_count()} CPUs, {platform.machine()}, "
        f"Python {platform.python_version()}), "
        f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}, load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (a shared machine).",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        f"Each server in its own process; {runs} alternating pairs after one warm-up each; "
        "milliseconds are medians; ratio = ours / reference (goal ≤ 1.0).",
        "",
        f"STT: Whisper base int8 from `.models/whisper-base`, beam 5, {THREADS} CPU threads, "
        f"language `en`; a {len(speech_16k(COMMAND)) / 32000:.1f} s spoken command sent as "
        "16 kHz 16-bit mono in 1024-sample chunks; timed from `audio-stop` to `transcript`. "
        f"Transcripts: ours {texts[0]!r}, reference {texts[1]!r}.",
        "",
        f"TTS: the Piper voice `{VOICE.name}` for both; a three-sentence reply "
        f"({len(REPLY)} characters, {audio_s:.1f} s of audio); timed from sending "
        "`synthesize` to the first `audio-chunk` and to `audio-stop`.",
        "",
        "| measure | ours ms | reference ms | ratio of medians | per-pair ratio median (range) |",
        "|---|---|---|---|---|",
        stt.row("STT: audio-stop → transcript"),
        first.row("TTS: synthesize → first audio-chunk"),
        total.row("TTS: synthesize → audio-stop"),
        "",
        "What our server adds, engine held equal: the same loaded engine called through our "
        "Wyoming endpoint vs directly, in one process (ratio = Wyoming / direct):",
        "",
        "| measure | Wyoming ms | direct engine ms | ratio of medians | per-pair ratio (range) |",
        "|---|---|---|---|---|",
        stt_over.row("STT: audio-stop → transcript vs engine.transcribe"),
        tts_over.row("TTS: synthesize → audio-stop vs engine.synthesize"),
        "",
        "Both sides run the same engine (CTranslate2 Whisper, Piper ONNX), so the ratio measures "
        "what each server adds around it: framing, audio conversion, queueing, chunking. "
        "On a shared, loaded machine single pairs swing widely (the range column); the ratio "
        "of medians is the figure to quote, and differences of a few percent are within noise.",
        "",
    ]
    write_report(args.out, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
