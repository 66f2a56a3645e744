"""tts-piper through real HTTP: OpenAI SDK, streaming, formats, Whisper round trip, bad input."""

from __future__ import annotations

import asyncio
import io
import shutil
import struct

import httpx
import numpy as np
import pytest
import soundfile as sf
from openai import OpenAI

from services.kit.audio import decode_audio, from_pcm16, resample
from services.tts_piper.app import build_app
from services.tts_piper.settings import Settings
from testkit.helpers import PIPER_VOICE, WHISPER_BASE, run_server, wer

pytestmark = pytest.mark.slow

TEXT = (
    "The quick brown fox jumps over the lazy dog. "
    "Streaming speech lets the first words play early. "
    "This is the third sentence of the test."
)


@pytest.fixture(scope="module")
def base():
    settings = Settings(voice=str(PIPER_VOICE), download=False, max_chars=500)
    with run_server(build_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def whisper():
    from faster_whisper import WhisperModel

    return WhisperModel(str(WHISPER_BASE), device="cpu", compute_type="int8", cpu_threads=2)


def transcribe(model, samples: np.ndarray, rate: int) -> str:
    audio = resample(samples, rate, 16000)
    segments, _ = model.transcribe(audio, language="en", beam_size=1, vad_filter=False)
    return " ".join(s.text for s in segments)


def test_openai_sdk_speech_is_intelligible(base, whisper):
    client = OpenAI(base_url=base + "/v1", api_key="unused")
    resp = client.audio.speech.create(
        model="tts-1", voice="alloy", input=TEXT, response_format="wav"
    )
    audio = decode_audio(resp.content)
    assert audio.sample_rate == 22050 and 6 < audio.duration_s < 15
    assert wer(TEXT, transcribe(whisper, audio.samples, audio.sample_rate)) <= 0.10


def test_openai_sdk_streaming_pcm(base, whisper):
    client = OpenAI(base_url=base + "/v1", api_key="unused")
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="nova", input=TEXT, response_format="pcm"
    ) as resp:
        assert resp.headers["content-type"] == "audio/pcm"
        assert resp.headers["x-tts-engine"] == "piper"
        assert resp.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in resp.headers
        rate = int(resp.headers["x-sample-rate"])
        data = b"".join(resp.iter_bytes())
    samples = from_pcm16(data)
    assert wer(TEXT, transcribe(whisper, samples, rate)) <= 0.10


def test_wav_stream_has_open_ended_header_and_decodes(base):
    with httpx.stream(
        "POST", base + "/v1/audio/speech", json={"input": TEXT, "response_format": "wav"}
    ) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"] == "audio/wav"
        data = b"".join(resp.iter_bytes())
    riff_size, data_size = struct.unpack("<I", data[4:8])[0], struct.unpack("<I", data[40:44])[0]
    assert riff_size == data_size == 0xFFFFFFFF
    audio = decode_audio(data)
    assert audio.duration_s == pytest.approx((len(data) - 44) / 2 / 22050)


def test_compressed_formats_match_wav_length(base):
    ref = decode_audio(
        httpx.post(
            base + "/v1/audio/speech", json={"input": "Hello there.", "response_format": "wav"}
        ).content
    )
    expected = {"flac": "audio/flac", "mp3": "audio/mpeg", "opus": "audio/opus"}
    for fmt, media in expected.items():
        r = httpx.post(
            base + "/v1/audio/speech", json={"input": "Hello there.", "response_format": fmt}
        )
        assert r.status_code == 200 and r.headers["content-type"] == media
        samples, rate = sf.read(io.BytesIO(r.content))
        assert len(samples) / rate == pytest.approx(ref.duration_s, rel=0.15, abs=0.1), fmt


def test_synthesize_returns_complete_wav(base):
    r = httpx.post(base + "/synthesize", json={"text": "Good morning.", "voice": "echo"})
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    assert r.headers["x-tts-engine"] == "piper"
    assert int(r.headers["content-length"]) == len(r.content)
    assert struct.unpack("<I", r.content[40:44])[0] == len(r.content) - 44
    audio = decode_audio(r.content)
    assert audio.duration_s > 0.3 and float(np.abs(audio.samples).max()) > 0.05


def test_speed_changes_duration(base):
    def seconds(speed: float) -> float:
        r = httpx.post(
            base + "/v1/audio/speech",
            json={"input": "Speed test sentence.", "response_format": "wav", "speed": speed},
        )
        return decode_audio(r.content).duration_s

    assert seconds(2.0) < 0.7 * seconds(1.0)


def test_voices_lists_local_and_openai_names(base):
    body = httpx.get(base + "/voices").json()
    assert body["default"] == "en_US-joe-medium"
    assert body["voices"] == [{"name": "en_US-joe-medium", "sample_rate": 22050}]
    assert body["openai_voices"]["shimmer"] == "en_US-joe-medium"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": ""}, 422, "input"),
        ({"input": "  \n\t "}, 422, "input"),
        ({"input": "word " * 101}, 400, "input"),
        ({"input": "hi", "voice": "robot"}, 400, "voice"),
        ({"input": "hi", "response_format": "aac"}, 422, "response_format"),
        ({"input": "hi", "response_format": "ogg"}, 422, "response_format"),
        ({"input": "hi", "speed": 4.5}, 422, "speed"),
        ({"input": "hi", "speed": 0.2}, 422, "speed"),
        ({"voice": "alloy"}, 422, "input"),
    ],
)
def test_bad_input_is_a_clear_4xx(base, body, status, param):
    r = httpx.post(base + "/v1/audio/speech", json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["message"]


def test_bad_synthesize_input(base):
    assert httpx.post(base + "/synthesize", json={"text": " "}).status_code == 422
    r = httpx.post(base + "/synthesize", json={"text": "hi", "voice": "robot"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_voice"


def test_missing_voice_is_not_ready_with_reason(tmp_path):
    app = build_app(Settings(voice="en_US-lessac-medium", voices_dir=str(tmp_path), download=False))
    with run_server(app, ready_path=None) as url:
        for _ in range(100):
            r = httpx.get(url + "/health/ready")
            if "startup failed" in r.json().get("reason", ""):
                break
            asyncio.run(asyncio.sleep(0.05))
        assert r.status_code == 503 and "PIPER_DOWNLOAD" in r.json()["reason"]
        r = httpx.post(url + "/v1/audio/speech", json={"input": "hi"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"


def test_voice_directory_and_voice_map(tmp_path):
    for name in ("en_US-joe-medium", "en_US-zed-medium"):
        shutil.copy(PIPER_VOICE, tmp_path / f"{name}.onnx")
        shutil.copy(str(PIPER_VOICE) + ".json", tmp_path / f"{name}.onnx.json")
    settings = Settings(
        voice=str(tmp_path), download=False, voice_map={"alloy": "en_US-zed-medium"}
    )
    with run_server(build_app(settings)) as url:
        voices = httpx.get(url + "/voices").json()
        assert [v["name"] for v in voices["voices"]] == ["en_US-joe-medium", "en_US-zed-medium"]
        assert voices["openai_voices"]["alloy"] == "en_US-zed-medium"
        assert voices["openai_voices"]["echo"] == "en_US-zed-medium"
        assert voices["openai_voices"]["fable"] == "en_US-joe-medium"
        r = httpx.post(url + "/synthesize", json={"text": "Hi.", "voice": "alloy"})
        assert r.headers["x-tts-voice"] == "en_US-zed-medium"


async def test_full_queue_answers_429_and_hang_up_frees_the_slot():
    settings = Settings(voice=str(PIPER_VOICE), download=False, max_concurrent=1, max_queue=0)
    speech = {"input": TEXT, "response_format": "flac"}
    with run_server(build_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            results = await asyncio.gather(
                *[client.post("/v1/audio/speech", json=speech) for _ in range(4)]
            )
            statuses = sorted(r.status_code for r in results)
            assert statuses[0] == 200 and 429 in statuses
            busy = next(r for r in results if r.status_code == 429)
            assert busy.headers["retry-after"] and busy.json()["error"]["code"] == "queue_full"
            # A client that hangs up mid-stream gives its slot back (else the queue stays full).
            long_body = {"input": "One sentence here. " * 20, "response_format": "pcm"}
            async with client.stream("POST", "/v1/audio/speech", json=long_body) as resp:
                assert resp.status_code == 200
                await anext(resp.aiter_raw())
            for _ in range(50):
                again = await client.post("/v1/audio/speech", json={"input": "Hi."})
                if again.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert again.status_code == 200
