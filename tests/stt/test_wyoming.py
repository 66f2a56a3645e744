"""The stt service's Wyoming endpoint, driven by the real `wyoming` client.

Fast tests use the fake engine (real uvicorn, real TCP); the slow one transcribes real speech
with Whisper base.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import numpy as np
import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart
from wyoming.event import Event
from wyoming.info import Describe, Info

from services.stt.app import build_app
from services.stt.settings import Settings
from testkit.fakes.stt import GatedEngine
from testkit.helpers import WHISPER_BASE, free_port, run_server, synth_speech, wer
from testkit.wyoming_client import (
    audio_events,
    client,
    raw_exchange,
    read_until,
    wyoming_port,
)

RATE = 16000


def _settings(**kw: object) -> Settings:
    base: dict[str, object] = {"log_json": False, "wyoming_port": 0, "beam_size": 1}
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


def _tone(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def fake() -> GatedEngine:
    return GatedEngine(text="turn on the kitchen light")


@pytest.fixture(scope="module")
def port(fake: GatedEngine):
    with run_server(build_app(_settings(), engine_factory=lambda _s: fake)) as base:
        yield wyoming_port(base)


async def _transcribe(port: int, events: list[Event]) -> list[Event]:
    async with client(port) as c:
        await c.write_event(Transcribe(language="en-US").event())
        for e in events:
            await c.write_event(e)
        return await read_until(c, "transcript-stop")


async def test_describe_lists_program_model_and_languages(port: int):
    async with client(port) as c:
        await c.write_event(Describe().event())
        event = await c.read_event()
    info = Info.from_event(event)
    assert len(info.asr) == 1 and info.asr[0].installed
    assert info.asr[0].supports_transcript_streaming
    model = info.asr[0].models[0]
    assert model.name == "base" and model.languages == ["en"] and model.installed


@pytest.mark.parametrize(
    ("rate", "width", "channels"), [(16000, 2, 1), (44100, 4, 2), (8000, 1, 1)]
)
async def test_any_format_is_converted_and_streamed_back(port, fake, rate, width, channels):
    events = await _transcribe(port, audio_events(_tone(1.5, rate), rate, width, channels))
    assert [e.type for e in events] == [
        "transcript-start",
        "transcript-chunk",
        "transcript",
        "transcript-stop",
    ]
    assert Transcript.from_event(events[2]).text == "turn on the kitchen light"
    assert events[1].data["text"].strip() == "turn on the kitchen light"
    assert fake.calls[-1].language == "en"  # en-US from the client -> Whisper's code


async def test_no_audio_is_an_empty_transcript(port):
    events = await _transcribe(port, audio_events(np.zeros(0, np.float32), RATE))
    assert Transcript.from_event(events[-2]).text == ""


async def test_unknown_event_types_are_dropped(port):
    async with client(port) as c:
        await c.write_event(AudioStart(rate=RATE, width=2, channels=1).event())

        await c.write_event(Event(type="from-the-future", data={"x": 1}))
        await c.write_event(Describe().event())
        assert (await c.read_event()).type == "info"


async def test_invalid_event_data_is_an_error_and_the_connection_lives(port):
    async with client(port) as c:
        await c.write_event(Event(type="audio-start", data={"rate": 16000}))  # no width
        err = await c.read_event()
        assert err.type == "error" and err.data["code"] == "invalid_event"
        await c.write_event(Event(type="audio-start", data={"rate": 0, "width": 2, "channels": 1}))
        assert (await c.read_event()).data["code"] == "invalid_audio"
        await c.write_event(Describe().event())
        assert (await c.read_event()).type == "info"


async def test_malformed_event_closes_only_that_connection(port):
    headers = await raw_exchange(port, b"{not json\n")
    assert [h["type"] for h in headers] == ["error"]
    assert headers[0]["data"]["code"] == "malformed_event"
    headers = await raw_exchange(port, b'["a list"]\n')
    assert headers[0]["data"]["code"] == "malformed_event"
    async with client(port) as c:  # the server is still there
        await c.write_event(Describe().event())
        assert (await c.read_event()).type == "info"


async def test_oversize_payload_and_header_are_refused(port):
    huge = json.dumps({"type": "audio-chunk", "payload_length": 1 << 30}).encode() + b"\n"
    headers = await raw_exchange(port, huge)
    assert headers[0]["data"]["code"] == "payload_too_large"
    headers = await raw_exchange(port, b'{"type": "describe", "pad": "' + b"x" * 70_000 + b'"}\n')
    assert headers[0]["data"]["code"] == "header_too_large"
    # Audio past STT_MAX_UPLOAD_BYTES in many small chunks is refused too.
    with run_server(
        build_app(_settings(max_upload_bytes=8000), engine_factory=lambda _s: GatedEngine())
    ) as base:
        async with client(wyoming_port(base)) as c:
            for e in audio_events(_tone(1.0), RATE)[:-1]:
                await c.write_event(e)
            err = await c.read_event()
            assert err.type == "error" and err.data["code"] == "audio_too_large"
    async with client(port) as c:
        await c.write_event(Describe().event())
        assert (await c.read_event()).type == "info"


async def test_client_vanishing_mid_stream_and_mid_transcription(port, fake):
    # Gone inside an event: header promises a payload that never comes.
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    chunk = AudioChunk(rate=RATE, width=2, channels=1, audio=b"\0" * 64).event()
    header = {"type": chunk.type, "data": chunk.data, "payload_length": 64}
    writer.write(json.dumps(header).encode())
    writer.write(b"\n" + b"\0" * 10)
    await writer.drain()
    writer.close()
    # Gone while the model works: the answer has nowhere to go.
    fake.block = True
    fake.gate.clear()
    fake.started.clear()
    try:
        async with client(port) as c:
            for e in audio_events(_tone(1.0), RATE):
                await c.write_event(e)
            assert await asyncio.to_thread(fake.started.wait, 10)
    finally:
        fake.gate.set()
        fake.block = False
    events = await _transcribe(port, audio_events(_tone(1.0), RATE))
    assert events[-1].type == "transcript-stop"


async def test_describe_waits_for_readiness_and_readiness_shows_the_port():
    engine = GatedEngine()
    engine.block = True  # the startup self-check blocks: the service stays "loading"
    port = free_port()
    app = build_app(_settings(wyoming_port=port), engine_factory=lambda _s: engine)
    with run_server(app, ready_path="/health/live") as base:
        # The Wyoming server listens before the model loads: wait for the port to open.
        deadline = time.monotonic() + 10
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
                continue
            writer.close()
            break
        async with client(port) as c:
            await c.write_event(Describe().event())
            err = await c.read_event()
        assert err.type == "error" and err.data["code"] == "not_ready"
        engine.gate.set()
        deadline = time.monotonic() + 10
        async with httpx.AsyncClient(base_url=base) as http:
            while (await http.get("/health/ready")).status_code != 200:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            ready = (await http.get("/health/ready")).json()
        assert ready["wyoming"] == {
            "listening": True,
            "host": "0.0.0.0",
            "port": port,
            "allow": "private",  # the default fence: Wyoming carries no key
        }
        async with client(port) as c:
            await c.write_event(Describe().event())
            assert (await c.read_event()).type == "info"


async def test_disabled_and_allow_list():
    app = build_app(_settings(wyoming_enabled=False), engine_factory=lambda _s: GatedEngine())
    with run_server(app) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            assert "wyoming" not in (await http.get("/health/ready")).json()
    fake = GatedEngine()
    app = build_app(_settings(wyoming_allow="10.0.0.0/8"), engine_factory=lambda _s: fake)
    with run_server(app) as base:
        answer: object = "unanswered"
        try:
            async with client(wyoming_port(base), read_timeout=5) as c:
                await c.write_event(Describe().event())
                answer = await c.read_event()
        except (ConnectionResetError, BrokenPipeError):
            # The server closes at once; the reset can surface on write, read or close.
            answer = None
        assert answer is None  # 127.0.0.1 is not in 10/8: closed at once


@pytest.mark.slow
async def test_spoken_sentence_gives_the_right_transcript():
    said = "Turn off the lights in the living room and lock the front door."
    speech, rate = synth_speech(said, rate=None)  # Piper's native 22.05 kHz
    settings = _settings(model=str(WHISPER_BASE), beam_size=5)
    with run_server(build_app(settings)) as base:
        port = wyoming_port(base)
        events = await _transcribe(port, audio_events(speech, rate))
    transcript = Transcript.from_event(next(e for e in events if e.type == "transcript"))
    assert wer(said, transcript.text) <= 0.1, transcript.text
    chunks = "".join(e.data["text"] for e in events if e.type == "transcript-chunk")
    assert chunks.strip() == transcript.text
    assert transcript.language == "en"


async def test_a_taken_port_is_reported_in_readiness_and_http_still_serves():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        settings = _settings(wyoming_host="127.0.0.1", wyoming_port=busy)
        with run_server(build_app(settings, engine_factory=lambda _s: GatedEngine())) as base:
            async with httpx.AsyncClient(base_url=base) as http:
                ready = (await http.get("/health/ready")).json()
    assert ready["status"] == "ready"
    assert ready["wyoming"]["listening"] is False
    assert f"127.0.0.1:{busy}" in ready["wyoming"]["error"]
