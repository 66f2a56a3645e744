"""tts-bark through real HTTP on a tiny random Bark checkpoint: speech, voices, refusals.

tts-bark never calls another engine: whatever Bark cannot do is a transient error status
(503/504/429/500) the orchestrator's fallback chain acts on (test_pipeline_fallback.py).
"""

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
from testkit.helpers import run_server
from testkit.models.tiny_bark import build_tiny_bark

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_bark(tmp_path_factory):
    # en_speaker_1 is listed but broken (a prompt file is missing): using it makes Bark raise.
    presets = {"v2/en_speaker_0": True, "v2/en_speaker_1": False}
    return build_tiny_bark(tmp_path_factory.mktemp("bark") / "tiny-bark", presets=presets)


def bark_settings(model, **kw) -> Settings:
    # A generous Bark timeout: on a loaded CI box the tiny model's generation passed the
    # default 60 s. The timeout test sets its own.
    base: dict[str, Any] = {"timeout_s": 600.0}
    base.update(kw)
    return Settings(model=str(model), semantic_max_new_tokens=24, **base)


def wait_for(url: str, predicate, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(url + "/health/ready")
        body: dict[str, Any] = r.json()
        if predicate(r.status_code, body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def requests_with_status(url: str, path: str, status: int) -> float:
    """The kit's request counter for one route and status (0 when none yet)."""
    for line in httpx.get(url + "/metrics").text.splitlines():
        labels = (f'route="{path}"', f'status="{status}"')
        if line.startswith("http_requests_total{") and all(x in line for x in labels):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture(scope="module")
def bark_url(tiny_bark):
    settings = bark_settings(
        tiny_bark,
        max_chars=120,
        voice_preset="v2/en_speaker_0",
        voice_map={"nova": "v2/en_speaker_0", "echo": "v2/en_speaker_1", "onyx": "v2/missing"},
    )
    with run_server(build_app(settings)) as url:
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


def test_long_text_and_speed_are_refused_with_503_for_the_next_provider(bark_url):
    long_text = "This sentence is too long for Bark. " * 4
    r = httpx.post(
        bark_url + "/v1/audio/speech", json={"input": long_text, "response_format": "wav"}
    )
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert err["code"] == "too_long_for_bark" and err["param"] == "input"
    assert "BARK_MAX_CHARS" in err["message"]
    r = httpx.post(bark_url + "/v1/audio/speech", json={"input": "hello.", "speed": 1.5})
    assert r.status_code == 503 and r.json()["error"]["code"] == "unsupported_speed"
    # An unknown voice stays the caller's mistake (400), whatever the text.
    r = httpx.post(bark_url + "/v1/audio/speech", json={"input": long_text, "voice": "robot"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_voice"


def test_load_failure_is_not_ready_with_the_reason(tmp_path):
    with run_server(build_app(bark_settings(tmp_path / "missing")), ready_path=None) as url:
        body = wait_for(url, lambda s, b: "startup failed" in b.get("reason", ""))
        assert httpx.get(url + "/health/ready").status_code == 503
        assert body["status"] == "not_ready" and "missing" in body["reason"]
        assert httpx.get(url + "/health/live").status_code == 200
        for method, path, payload in (
            ("POST", "/v1/audio/speech", {"input": "hello"}),
            ("POST", "/synthesize", {"text": "hello"}),
            ("GET", "/voices", None),
        ):
            r = httpx.request(method, url + path, json=payload)
            assert r.status_code == 503 and r.headers["retry-after"] == "5", (path, r.text)
            err = r.json()["error"]
            assert err["code"] == "not_ready" and "startup failed" in err["message"], err


def test_timeout_is_504(tiny_bark):
    with run_server(build_app(bark_settings(tiny_bark, timeout_s=0.001))) as url:
        r = httpx.post(
            url + "/v1/audio/speech", json={"input": "hello world.", "response_format": "pcm"}
        )
        assert r.status_code == 504, r.text
        err = r.json()["error"]
        assert err["code"] == "synthesis_timeout" and "BARK_TIMEOUT_S" in err["message"]


def test_bark_error_is_500_in_the_envelope_and_the_service_goes_on(bark_url):
    before = requests_with_status(bark_url, "/synthesize", 500)
    for voice in ("v2/en_speaker_1", "echo"):  # a broken preset, and an OpenAI name mapped to it
        r = httpx.post(bark_url + "/synthesize", json={"text": "hello.", "voice": voice})
        assert r.status_code == 500, r.text
        err = r.json()["error"]
        assert err["code"] == "synthesis_failed" and err["type"] == "api_error", err
    assert requests_with_status(bark_url, "/synthesize", 500) == before + 2
    r = httpx.post(bark_url + "/synthesize", json={"text": "hello.", "voice": "nova"}, timeout=60)
    assert r.status_code == 200 and r.headers["x-tts-engine"] == "bark"
