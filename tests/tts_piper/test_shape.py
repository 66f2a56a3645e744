"""tts-piper's one shape with a fake engine: engine_factory, load_checked, Deps, routes."""

from __future__ import annotations

import time

import httpx

from services.kit.audio import decode_audio
from services.tts_piper.app import build_app
from services.tts_piper.settings import Settings
from testkit.fakes.tts_piper import ToneEngine
from testkit.helpers import run_server


def _settings() -> Settings:
    return Settings(log_json=False, wyoming_enabled=False, voice_map={"nova": "fake-b"})


def test_a_fake_engine_serves_through_the_real_routes():
    fake = ToneEngine()
    with run_server(build_app(_settings(), engine_factory=lambda _s: fake)) as base:
        ready = httpx.get(base + "/health/ready").json()
        assert ready["engine"] == "fake" and ready["model"] == "fake-a"
        assert ready["voices"] == ["fake-a", "fake-b"] and ready["self_check_ms"] >= 0
        r = httpx.post(
            base + "/v1/audio/speech",
            json={"input": "hello there", "voice": "nova", "response_format": "wav", "speed": 2},
        )
        assert r.status_code == 200 and r.headers["x-tts-engine"] == "fake"
        assert r.headers["x-tts-voice"] == "fake-b"
        assert fake.calls[-1] == ("hello there", "fake-b", 2.0)
        assert decode_audio(r.content).sample_rate == 16000
        voices = httpx.get(base + "/voices").json()
        assert voices["engine"] == "fake" and voices["openai_voices"]["nova"] == "fake-b"
        r = httpx.post(base + "/synthesize", json={"text": "x" * 5000})
        assert r.status_code == 400 and r.json()["error"]["code"] == "input_too_long"


def test_an_engine_failing_its_self_check_is_not_ready_and_routes_say_503():
    fake = ToneEngine()
    fake.silent = True
    app = build_app(_settings(), engine_factory=lambda _s: fake)
    with run_server(app, ready_path=None) as base:
        deadline = time.monotonic() + 30
        body = httpx.get(base + "/health/ready").json()
        while "startup failed" not in body["reason"] and time.monotonic() < deadline:
            time.sleep(0.05)
            body = httpx.get(base + "/health/ready").json()
        assert "VoiceUnavailableError" in body["reason"] and "no audio" in body["reason"], body
        r = httpx.post(base + "/synthesize", json={"text": "hello"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        assert httpx.get(base + "/voices").status_code == 503
