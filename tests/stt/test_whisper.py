"""The real Whisper base model behind the HTTP API, driven by the official openai SDK."""

from __future__ import annotations

import io
import itertools

import httpx
import numpy as np
import pytest
import soundfile as sf
from openai import OpenAI

from services.stt.app import build_app
from services.stt.settings import Settings
from testkit import texts
from testkit.helpers import WHISPER_BASE, run_server, synth_speech, wav_bytes, wer

pytestmark = pytest.mark.slow

# Six of the shared sentences: a clip long enough for several Whisper segments.
SENTENCES = texts.SENTENCES[:6]
RATE = 16000


@pytest.fixture(scope="module")
def speech() -> dict[str, np.ndarray]:
    """The first sentence alone, and all sentences joined into one clip with short pauses."""
    pause = np.zeros(int(0.4 * RATE), dtype=np.float32)
    parts = [synth_speech(s, RATE)[0] for s in SENTENCES]
    joined = np.concatenate([p for part in parts for p in (part, pause)])
    return {"short": parts[0], "long": joined}


@pytest.fixture(scope="module")
def base_url():
    settings = Settings(model=str(WHISPER_BASE), language=None, log_json=False)
    with run_server(build_app(settings), timeout=180) as base:
        yield base


@pytest.fixture(scope="module")
def client(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0, timeout=120)


def test_readiness_reports_the_loaded_model(base_url: str):
    body = httpx.get(base_url + "/health/ready").json()
    assert body["status"] == "ready" and body["model"] == "whisper-base"
    assert body["compute_type"] == "int8" and body["self_check_ms"] > 0


def test_wer_on_six_sentences_verbose_json(client: OpenAI, speech: dict[str, np.ndarray]):
    result = client.audio.transcriptions.create(
        model="whisper-1",
        file=("speech.wav", wav_bytes(speech["long"], RATE), "audio/wav"),
        response_format="verbose_json",
        timestamp_granularities=["segment", "word"],
    )
    reference = " ".join(SENTENCES)
    assert wer(reference, result.text) <= 0.10, result.text
    assert result.language == "en"
    assert result.duration == pytest.approx(len(speech["long"]) / RATE, abs=0.05)
    segments = result.segments or []
    assert len(segments) >= 2
    assert all(s.start < s.end for s in segments)
    assert segments[-1].end <= result.duration + 0.5
    words = result.words or []
    assert abs(len(words) - len(reference.split())) <= 3
    assert all(a.start <= b.start for a, b in itertools.pairwise(words))


def test_sdk_json_text_srt(client: OpenAI, speech: dict[str, np.ndarray]):
    wav = wav_bytes(speech["short"], RATE)
    as_json = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", wav))
    assert wer(SENTENCES[0], as_json.text) <= 0.10, as_json.text
    as_text = client.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", wav), response_format="text", language="en"
    )
    assert isinstance(as_text, str) and wer(SENTENCES[0], as_text) <= 0.10
    srt = client.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", wav), response_format="srt"
    )
    assert isinstance(srt, str)
    lines = srt.strip().splitlines()
    assert lines[0] == "1" and " --> " in lines[1] and lines[1].startswith("00:00:0")
    assert wer(SENTENCES[0], " ".join(lines[2:])) <= 0.10


def test_sdk_bad_format_is_a_400(client: OpenAI, speech: dict[str, np.ndarray]):
    import openai

    with pytest.raises(openai.BadRequestError) as exc:
        client.audio.transcriptions.create(  # type: ignore[call-overload]
            model="whisper-1",
            file=("a.wav", wav_bytes(speech["short"], RATE)),
            response_format="docx",
        )
    assert exc.value.status_code == 400 and "response_format" in str(exc.value)


def test_transcribe_flac_stereo_native_rate(base_url: str, speech: dict[str, np.ndarray]):
    native, rate = synth_speech(SENTENCES[1], None)
    assert rate != RATE  # exercises resampling
    buf = io.BytesIO()
    sf.write(buf, np.stack([native, native], axis=1), rate, format="FLAC")
    r = httpx.post(
        base_url + "/transcribe",
        files={"file": ("a.flac", buf.getvalue(), "audio/flac")},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert wer(SENTENCES[1], body["text"]) <= 0.10, body["text"]
    assert body["language"] == "en" and body["processing_ms"] > 0
    assert body["duration"] == pytest.approx(len(native) / rate, abs=0.05)
    assert body["segments"] and body["segments"][0]["text"]


def test_silence_gives_empty_text(client: OpenAI):
    silence = wav_bytes(np.zeros(RATE * 3, dtype=np.float32), RATE)
    assert client.audio.transcriptions.create(model="whisper-1", file=("s.wav", silence)).text == ""


def test_metrics_count_audio(base_url: str):
    text = httpx.get(base_url + "/metrics").text
    audio = [line for line in text.splitlines() if line.startswith("stt_audio_seconds_total ")]
    assert audio and float(audio[0].split()[1]) > 20
    assert "stt_processing_seconds_count" in text
