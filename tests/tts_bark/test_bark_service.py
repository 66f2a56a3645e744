"""tts-bark through real HTTP: a tiny random Bark checkpoint, and fallback to a real tts-piper."""

from __future__ import annotations

import time
from typing import Any

import httpx
import numpy as np
import pytest
from openai import OpenAI

from services.kit.audio import decode_audio
from services.tts_bark.app import build_app
from services.tts_bark.settings import Settings
from services.tts_piper.app import build_app as build_piper_app
from services.tts_piper.settings import Settings as PiperSettings
from testkit.helpers import PIPER_VOICE, WHISPER_TINY_EN, free_port, run_server, wer
from testkit.models.tiny_bark import build_tiny_bark

pytestmark = pytest.mark.slow

SPOKEN = "Please hold while I check that for you."


@pytest.fixture(scope="module")
def tiny_bark(tmp_path_factory):
    # en_speaker_1 is listed but broken (a prompt file is missing): using it makes Bark raise.
    presets = {"v2/en_speaker_0": True, "v2/en_speaker_1": False}
    return build_tiny_bark(tmp_path_factory.mktemp("bark") / "tiny-bark", presets=presets)


@pytest.fixture(scope="module")
def piper_url():
    with run_server(build_piper_app(PiperSettings(voice=str(PIPER_VOICE), download=False))) as url:
        yield url


def bark_settings(model, fallback: str, **kw) -> Settings:
    # A generous Bark timeout: on a loaded CI box the tiny model's generation passed the
    # default 60 s and Piper answered, failing the tests that expect Bark. The timeout
    # test sets its own.
    base: dict[str, Any] = {"timeout_s": 600.0}
    base.update(kw)
    return Settings(
        model=str(model),
        fallback_url=fallback,
        semantic_max_new_tokens=24,
        probe_interval_s=0.2,
        **base,
    )


def wait_for(url: str, predicate, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(url + "/health/ready")
        body: dict[str, Any] = r.json()
        if predicate(r.status_code, body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def fallback_count(url: str, reason: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(f'tts_fallback_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    raise AssertionError(f"no tts_fallback_total for {reason}")


@pytest.fixture(scope="module")
def bark_url(tiny_bark, piper_url):
    settings = bark_settings(
        tiny_bark,
        piper_url,
        max_chars=120,
        voice_preset="v2/en_speaker_0",
        voice_map={"nova": "v2/en_speaker_0", "echo": "v2/en_speaker_1", "onyx": "v2/missing"},
    )
    with run_server(build_app(settings)) as url:
        wait_for(url, lambda s, b: b.get("engine") == "bark")
        yield url


def test_bark_loads_and_generates_through_openai_sdk(bark_url):
    ready = httpx.get(bark_url + "/health/ready").json()
    assert (
        ready["status"] == "ready" and ready["engine"] == "bark" and ready["sample_rate"] == 24000
    )
    client = OpenAI(base_url=bark_url + "/v1", api_key="unused")
    raw = client.audio.speech.with_raw_response.create(
        model="bark", voice="alloy", input="hello world. this is a test.", response_format="wav"
    )
    assert raw.headers["x-tts-engine"] == "bark" and raw.headers["x-tts-voice"] == "default"
    audio = decode_audio(raw.content)
    # Random weights make noise, not words: check it is real, finite, non-silent audio at 24 kHz.
    assert audio.sample_rate == 24000 and audio.duration_s > 0.05
    assert np.isfinite(audio.samples).all() and float(np.abs(audio.samples).max()) > 0


def test_bark_synthesize_and_voices(bark_url):
    r = httpx.post(
        bark_url + "/synthesize", json={"text": "hello.", "voice": "default"}, timeout=60
    )
    assert r.status_code == 200 and r.headers["x-tts-engine"] == "bark"
    assert r.headers["content-type"] == "audio/wav" and decode_audio(r.content).sample_rate == 24000
    voices = httpx.get(bark_url + "/voices").json()
    assert voices["engine"] == "bark" and voices["default_preset"] == "v2/en_speaker_0"
    names = [v["name"] for v in voices["voices"]]
    assert names == ["default", "v2/en_speaker_0", "v2/en_speaker_1"]
    assert voices["openai_voices"]["nova"] == "v2/en_speaker_0"
    assert voices["openai_voices"]["onyx"] == "default"  # a map entry naming no preset is ignored
    r = httpx.post(bark_url + "/synthesize", json={"text": "hello.", "voice": "nova"}, timeout=60)
    assert r.headers["x-tts-engine"] == "bark" and r.headers["x-tts-voice"] == "v2/en_speaker_0"
    r = httpx.post(bark_url + "/synthesize", json={"text": "hello.", "voice": "robot"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "voice"


def test_long_text_and_speed_go_to_piper_and_are_counted(bark_url):
    before = fallback_count(bark_url, "too_long")
    long_text = "This sentence is spoken by Piper. " * 4
    r = httpx.post(
        bark_url + "/v1/audio/speech",
        json={"input": long_text, "response_format": "wav"},
        timeout=60,
    )
    assert r.status_code == 200 and r.headers["x-tts-engine"] == "piper"
    assert r.headers["x-tts-fallback-reason"] == "too_long"
    audio = decode_audio(r.content)
    assert audio.sample_rate == 22050 and audio.duration_s > 2
    assert fallback_count(bark_url, "too_long") == before + 1
    r = httpx.post(
        bark_url + "/v1/audio/speech", json={"input": "hello.", "speed": 1.5}, timeout=60
    )
    assert r.status_code == 200 and r.headers["x-tts-fallback-reason"] == "speed"
    assert r.headers["content-type"] == "audio/mpeg" and len(r.content) > 500


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"input": " "}, 422),
        ({"input": "x" * 5000}, 400),
        ({"input": "hi", "speed": 9}, 422),
        ({"input": "hi", "response_format": "aac"}, 422),
    ],
)
def test_bark_bad_input(bark_url, body, status):
    r = httpx.post(bark_url + "/v1/audio/speech", json=body)
    assert r.status_code == status and "error" in r.json()


def test_load_failure_serves_real_speech_from_piper(tmp_path, piper_url):
    with run_server(build_app(bark_settings(tmp_path / "missing", piper_url))) as url:
        body = wait_for(url, lambda s, b: "load failed" in str(b.get("bark")))
        assert body["status"] == "ready" and body["engine"] == "piper-fallback"
        assert body["fallback"] == "fallback ready"
        r = httpx.post(url + "/synthesize", json={"text": SPOKEN}, timeout=60)
        assert r.status_code == 200 and r.headers["x-tts-engine"] == "piper"
        assert r.headers["x-tts-fallback-reason"] == "not_loaded"
        audio = decode_audio(r.content, 16000)
        from faster_whisper import WhisperModel

        model = WhisperModel(str(WHISPER_TINY_EN), device="cpu", compute_type="int8", cpu_threads=2)
        segments, _ = model.transcribe(audio.samples, language="en", beam_size=1)
        assert wer(SPOKEN, " ".join(s.text for s in segments)) <= 0.2
        assert fallback_count(url, "not_loaded") == 1
        # Piper judges voices in fallback mode, and its 4xx comes back unchanged.
        r = httpx.post(url + "/synthesize", json={"text": "hi", "voice": "robot"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_voice"


def test_timeout_falls_back_to_piper(tiny_bark, piper_url):
    settings = bark_settings(tiny_bark, piper_url, timeout_s=0.001)
    with run_server(build_app(settings)) as url:
        wait_for(url, lambda s, b: b.get("engine") == "bark")
        r = httpx.post(
            url + "/v1/audio/speech",
            json={"input": "hello world.", "response_format": "pcm"},
            timeout=60,
        )
        assert r.status_code == 200 and r.headers["x-tts-engine"] == "piper"
        assert r.headers["x-tts-fallback-reason"] == "timeout" and len(r.content) > 4000
        assert fallback_count(url, "timeout") == 1


def test_no_bark_and_no_fallback_is_an_error_not_silence(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    with run_server(build_app(bark_settings(tmp_path / "missing", dead)), ready_path=None) as url:
        body = wait_for(url, lambda s, b: "load failed" in b.get("reason", ""))
        assert "unreachable" in body["reason"]
        assert httpx.get(url + "/health/ready").status_code == 503
        r = httpx.post(url + "/v1/audio/speech", json={"input": "hello"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "fallback_unavailable"
        assert "Bark cannot answer (not_loaded)" in r.json()["error"]["message"]
    with run_server(build_app(bark_settings(tmp_path / "missing", "")), ready_path=None) as url:
        r = httpx.post(url + "/synthesize", json={"text": "hello"})
        assert r.status_code == 503 and "PIPER_FALLBACK_URL" in r.json()["error"]["message"]


def test_fallback_that_is_not_ready_gives_502(tmp_path):
    broken_piper = build_piper_app(PiperSettings(voice=str(tmp_path / "none.onnx"), download=False))
    with (
        run_server(broken_piper, ready_path=None) as piper,
        run_server(build_app(bark_settings(tmp_path / "missing", piper)), ready_path=None) as url,
    ):
        wait_for(url, lambda s, b: "not ready (503)" in b.get("reason", ""))
        r = httpx.post(url + "/v1/audio/speech", json={"input": "hello"})
        assert r.status_code == 502
        err = r.json()["error"]
        assert err["code"] == "fallback_failed" and "503" in err["message"]


def test_bark_error_falls_back_with_piper_voice(bark_url):
    before = fallback_count(bark_url, "error")
    for voice in ("v2/en_speaker_1", "echo"):  # a broken preset, and an OpenAI name mapped to it
        r = httpx.post(
            bark_url + "/synthesize", json={"text": "hello.", "voice": voice}, timeout=60
        )
        assert r.status_code == 200, r.text
        assert (
            r.headers["x-tts-engine"] == "piper" and r.headers["x-tts-fallback-reason"] == "error"
        )
        assert decode_audio(r.content).sample_rate == 22050
    assert fallback_count(bark_url, "error") == before + 2
