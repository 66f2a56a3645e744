"""Streamed denoise in live sessions: the real orchestrator and a real preprocessor app.

The preprocessor runs `testkit.fakes.denoise.MarkedEngine`: its output gain depends on the
sample's index in its stream, so the audio the STT fake receives tells the streamed span (one
stream since the session began, latency compensated) from the whole-utterance POST (a fresh
stream per clip), to the sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from services.kit.audio import from_pcm16, to_pcm16
from services.orchestrator.config import ProviderConfig
from services.orchestrator.realtime.denoise_stream import StreamingDenoiser, StreamTarget
from services.orchestrator.stages import StageClient, make_session
from services.preprocessor.app import build_app as build_preprocessor
from services.preprocessor.settings import Settings as PreprocessorSettings
from testkit.fakes.denoise import MarkedEngine, marked
from testkit.helpers import run_server, synth_speech
from testkit.orchestrator import Fake, all_urls, config_doc, dead_url, orchestrator, write_config
from testkit.realtime import SPEECH_RATE, connect, metrics, run, say, silence, until

PERIOD = 2400
# One PCM16 step for the preprocessor's output, one for the WAV the STT gets.
TOLERANCE = 2.5 / 32768
TRANSCRIBED = "conversation.item.input_audio_transcription.completed"


@pytest.fixture(scope="module")
def question() -> np.ndarray:
    """A spoken question at 24 kHz, as the client sends it (PCM16 values)."""
    audio, _ = synth_speech("What is the weather like in Paris today?", SPEECH_RATE)
    return from_pcm16(to_pcm16(np.concatenate([silence(0.5), audio, silence(1.0)])))


class Mesh:
    """An orchestrator whose denoise provider is a real preprocessor app running `engine`."""

    def __init__(self, base: str, preprocessor: str, engine: MarkedEngine) -> None:
        self.base = base
        self.preprocessor = preprocessor
        self.engine = engine

    def pre_metric(self, name: str, **labels: str) -> float:
        """One sample of the preprocessor's /metrics (0 when absent)."""
        text = httpx.get(self.preprocessor + "/metrics", timeout=10).text
        return _sample(text, name, labels)


def _sample(text: str, name: str, labels: dict[str, str]) -> float:
    for line in text.splitlines():
        m = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            return float(m.group(2))
    return 0.0


@contextlib.contextmanager
def mesh(
    tmp: Path,
    fakes: dict[str, Fake],
    delay: int,
    token: str = "",
    speculate_ms: int = 200,
    gate_db: float | None = None,
    **pre: Any,
) -> Iterator[Mesh]:
    """A preprocessor (MarkedEngine with `delay`, mesh `token`) and an orchestrator using it."""
    engine = MarkedEngine(delay=delay, period=PERIOD)
    settings = PreprocessorSettings(engine="passthrough", log_json=False, mesh_token=token, **pre)
    with run_server(build_preprocessor(settings, lambda _: engine)) as pre_url:
        doc = config_doc(all_urls(fakes, denoise=pre_url))
        doc["providers"]["denoise"]["api_key"] = token
        path = write_config(tmp / "p.yaml", doc)
        settings = {
            "realtime_denoise_wait_s": 3.0,
            "realtime_speculate_ms": speculate_ms,
            "denoise_min_snr_db": gate_db,
        }
        with orchestrator(path, **settings) as base:
            yield Mesh(base, pre_url, engine)


def stt_samples(fakes: dict[str, Fake]) -> np.ndarray:
    """The audio of the last transcription the STT fake received."""
    data = fakes["primary"].knobs.stt_audio[-1]
    with wave.open(io.BytesIO(data)) as w:
        assert w.getframerate() == SPEECH_RATE
        return from_pcm16(w.readframes(w.getnframes()))


async def _wait_streams(m: Mesh, want: float) -> None:
    """Until the preprocessor reports `want` open streams (10 s at most)."""
    for _ in range(200):
        if m.pre_metric("denoise_active_streams", engine="marked") == want:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"the preprocessor never reported {want:g} open streams")


async def vad_turn(m: Mesh, audio: np.ndarray, streams: int = 1) -> int:
    """Stream `audio` once the preprocessor holds `streams` streams; the utterance's start."""
    async with connect(m.base) as conn:
        await until(conn, "session.created")
        # Audio sent before the stream is open would only wait in the backlog; the tests
        # decide whether a flush is needed, so they start from an open stream.
        await _wait_streams(m, streams)
        await say(conn, audio)
        started = await until(conn, "input_audio_buffer.speech_started")
        await until(conn, TRANSCRIBED)
        return int(started.audio_start_ms) * SPEECH_RATE // 1000


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert len(got) == len(want)
    assert float(np.max(np.abs(got - want))) <= TOLERANCE


@pytest.mark.parametrize("token", ["", "mesh-secret"])
def test_stt_gets_the_streamed_span(
    tmp_path: Path, fakes: dict[str, Fake], question: np.ndarray, token: str
) -> None:
    """The STT hears the input span as the stream denoised it; the denoise POST is not called.

    With a mesh token the stream carries the provider's key, as the stage's POST does.
    """
    delay = 1000  # under the 192 ms of kept silence: the span is out without a flush
    # Turns start at the stop, not at a pause (which asks for the audio up to the pause: flush).
    with mesh(tmp_path, fakes, delay, token, speculate_ms=0) as m:
        opened = m.engine.streams_opened
        start = run(lambda: vad_turn(m, question))
        got = stt_samples(fakes)
        span = question[start : start + len(got)]
        # Stream positions count from the session's first sample, not the utterance's.
        assert_close(got, marked(span, start, PERIOD))
        posted = marked(span, 0, PERIOD)
        assert float(np.max(np.abs(got - posted))) > 0.01  # the two are told apart
        late = marked(question[start - delay : start - delay + len(got)], start - delay, PERIOD)
        assert float(np.max(np.abs(got - late))) > 0.01  # so is an uncompensated delay
        assert m.engine.streams_opened - opened == 1  # one stream, no flush, no POST
        assert m.pre_metric("denoise_audio_seconds_total", endpoint="denoise") == 0
        assert m.pre_metric("denoise_audio_seconds_total", endpoint="denoise_ws") > 1.0
        streamed = _sample(
            metrics(m.base),
            "orchestrator_stage_requests_total",
            {"stage": "denoise", "outcome": "streamed"},
        )
        assert streamed == 1


@pytest.mark.parametrize("speculate_ms", [0, 200])
def test_span_in_the_delayed_tail_is_flushed(
    tmp_path: Path, fakes: dict[str, Fake], question: np.ndarray, speculate_ms: int
) -> None:
    """A span reaching into the preprocessor's delay is flushed out, still sample-exact.

    With a speculative start the span (up to the pause) is asked for at the pause; without,
    at the stop, where 0.5 s of delay is still more than the silence kept after the speech.
    """
    delay = SPEECH_RATE // 2
    with mesh(tmp_path, fakes, delay, speculate_ms=speculate_ms) as m:
        opened = m.engine.streams_opened
        start = run(lambda: vad_turn(m, question))
        got = stt_samples(fakes)
        assert_close(got, marked(question[start : start + len(got)], start, PERIOD))
        assert m.engine.streams_opened - opened == 2  # the stream, renewed by its flush
        assert m.pre_metric("denoise_audio_seconds_total", endpoint="denoise") == 0


def stream_offset(got: np.ndarray, span: np.ndarray) -> int:
    """The stream position (mod 2 periods) at which the engine saw `span`, read off `got`."""
    loud = np.flatnonzero(np.abs(span) > 0.001)
    positive = got[loud] / span[loud] > 0
    for k in range(2 * PERIOD):
        if np.array_equal(((loud + k) // PERIOD) % 2 == 0, positive):
            return k
    pytest.fail("the STT audio is no marked version of the span")


def test_utterance_after_a_flush_is_aligned(
    tmp_path: Path, fakes: dict[str, Fake], question: np.ndarray
) -> None:
    """After a flush the preprocessor restarts its stream; the next span is still exact."""
    audio = np.concatenate([question, question])
    with mesh(tmp_path, fakes, SPEECH_RATE // 2) as m:

        async def body() -> list[int]:
            async with connect(m.base) as conn:
                await until(conn, "session.created")
                await _wait_streams(m, 1)
                await say(conn, audio)
                seen: list[Any] = []
                for _ in range(2):  # the second speech may start before the first is heard
                    await until(conn, TRANSCRIBED, seen)
                starts = [e for e in seen if e.type == "input_audio_buffer.speech_started"]
                return [int(e.audio_start_ms) * SPEECH_RATE // 1000 for e in starts]

        _, second = run(body)
        assert m.engine.streams_opened >= 3  # the stream, renewed by each utterance's flush
        assert m.pre_metric("denoise_audio_seconds_total", endpoint="denoise") == 0
    got = stt_samples(fakes)
    span = audio[second : second + len(got)]
    k = stream_offset(got, span)
    # One phase across the whole span: aligned within the stream's new epoch (a client that
    # lost track of the restart would be out of step, its stream off and the span posted).
    assert_close(got, marked(span, k, PERIOD))


def test_refused_stream_falls_back_to_the_post(
    tmp_path: Path, fakes: dict[str, Fake], question: np.ndarray
) -> None:
    """A preprocessor at its stream limit: the turn is denoised by the stage's POST as before."""
    with mesh(tmp_path, fakes, 1000, max_streams=0) as m:
        start = run(lambda: vad_turn(m, question, streams=0))
        got = stt_samples(fakes)
        # A fresh engine stream for the clip: positions from the utterance's first sample.
        assert_close(got, marked(question[start : start + len(got)], 0, PERIOD))
        assert m.pre_metric("denoise_audio_seconds_total", endpoint="denoise") > 1.0
        assert m.pre_metric("denoise_audio_seconds_total", endpoint="denoise_ws") == 0
        assert 'outcome="streamed"' not in metrics(m.base)


def test_stream_freed_when_the_session_ends_or_vad_goes_off(
    tmp_path: Path, fakes: dict[str, Fake]
) -> None:
    """The preprocessor's stream count returns to 0 when the client leaves or turns VAD off."""
    with mesh(tmp_path, fakes, 1000) as m:

        async def body() -> None:
            async with connect(m.base) as conn:
                await until(conn, "session.created")
                await say(conn, silence(0.3))
                await _wait_streams(m, 1)
            await _wait_streams(m, 0)  # the client left
            async with connect(m.base) as conn:
                await until(conn, "session.created")
                await _wait_streams(m, 1)
                await conn.session.update(
                    session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
                )
                await until(conn, "session.updated")
                await _wait_streams(m, 0)  # manual turns: no stream held

        run(body)


def test_stream_off_without_a_provider_or_when_behind() -> None:
    """No provider answers, or audio piles up unsent: the stream turns off, spans are None."""

    async def body() -> None:
        async with make_session() as http:
            client = StageClient(http)
            # Accepts connections and never answers the handshake.
            silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
            port = silent.sockets[0].getsockname()[1]
            hang = ProviderConfig(capability="denoise", url=f"http://127.0.0.1:{port}")
            stream = StreamingDenoiser(
                client, [StreamTarget("hang", hang, 30.0)], keep_s=10, wait_s=0.2
            )
            stream.start()
            stream.feed(silence(6.0))
            assert stream.failed is None
            assert await stream.segment(0, 100) is None  # not connected within the wait
            stream.feed(silence(6.0))  # more unsent than the 10 s the buffer keeps
            assert stream.failed is not None and "fell behind" in stream.failed
            assert await stream.segment(0, 100) is None
            await stream.close()
            silent.close()

            dead = ProviderConfig(capability="denoise", url=dead_url())
            stream = StreamingDenoiser(
                client, [StreamTarget("dead", dead, 5.0)], keep_s=10, wait_s=5.0
            )
            stream.start()
            stream.feed(silence(1.0))
            started = time.perf_counter()
            assert await stream.segment(0, 100) is None
            assert time.perf_counter() - started < 4.0  # the failure ends the wait
            assert stream.failed is not None and "dead" in stream.failed
            await stream.close()

    run(body)


def test_the_snr_gate_applies_to_streamed_turns(
    tmp_path: Path, fakes: dict[str, Fake], question: np.ndarray
) -> None:
    """Under ORCH_DENOISE_MIN_SNR_DB the STT hears the raw span, as a /v1/voice turn would."""
    # Digital silence around the speech: an SNR far above any real floor, so 200 dB gates it.
    with mesh(tmp_path, fakes, 1000, speculate_ms=0, gate_db=200.0) as m:
        start = run(lambda: vad_turn(m, question))
        got = stt_samples(fakes)
        assert_close(got, question[start : start + len(got)])  # raw: no mark on it
        assert m.pre_metric("denoise_audio_seconds_total", endpoint="denoise") == 0
        skipped = _sample(
            metrics(m.base),
            "orchestrator_stage_requests_total",
            {"stage": "denoise", "outcome": "streamed"},
        )
        assert skipped == 0
