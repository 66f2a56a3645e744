"""Bad input, limits, queueing and readiness through real HTTP, with a fake engine."""

from __future__ import annotations

import threading

import httpx
import numpy as np
import pytest

from services.stt.app import build_app
from services.stt.settings import Settings
from testkit.fakes.stt import GatedEngine
from testkit.helpers import run_server, wav_bytes

RATE = 16000
URL = "/v1/audio/transcriptions"


def _tone(seconds: float, rate: int = RATE, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


def _post(base: str, data: bytes, path: str = URL, **fields: object) -> httpx.Response:
    return httpx.post(
        base + path, files={"file": ("a.wav", data, "audio/wav")}, data=fields, timeout=30
    )


@pytest.fixture(scope="module")
def fake() -> GatedEngine:
    return GatedEngine()


@pytest.fixture(scope="module")
def server(fake: GatedEngine):
    settings = Settings(
        max_upload_bytes=200_000, max_duration_s=5.0, max_prompt_chars=50, log_json=False
    )
    with run_server(build_app(settings, engine_factory=lambda _s: fake)) as base:
        yield base


def _error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, object]:
    assert r.status_code == status, r.text
    err: dict[str, object] = r.json()["error"]
    assert err["message"]
    if code is not None:
        assert err["code"] == code
    return err


def test_good_request_passes_options(server: str, fake: GatedEngine):
    r = _post(server, wav_bytes(_tone(1.0), RATE), language="EN", prompt="names", temperature="0.4")
    assert r.status_code == 200 and r.json() == {"text": "hello world"}
    assert float(r.headers["x-processing-ms"]) >= 0
    opts = fake.calls[-1]
    assert (opts.language, opts.prompt, opts.temperature) == ("en", "names", 0.4)
    assert not opts.word_timestamps
    _post(server, wav_bytes(_tone(1.0), RATE), temperature="0")
    assert fake.calls[-1].temperature is None  # 0 = the automatic fallback schedule


def test_bad_audio(server: str):
    wav = wav_bytes(_tone(1.0), RATE)
    _error(_post(server, b""), 400, "empty_audio")
    _error(_post(server, b"definitely not audio " * 50), 415, "unsupported_audio")
    _error(_post(server, wav[: len(wav) // 2]), 400, "truncated_audio")
    _error(_post(server, wav[:44], "/transcribe"), 400)  # a header and no samples
    r = httpx.post(server + URL, data={"model": "whisper-1"})
    assert _error(r, 422)["param"] == "file"


def test_silence_is_empty_text_not_an_error(server: str, fake: GatedEngine):
    before = len(fake.calls)
    silence = wav_bytes(np.zeros(RATE * 2, dtype=np.float32), RATE)
    assert _post(server, silence).json() == {"text": ""}
    r = _post(server, silence, "/transcribe")
    assert r.status_code == 200
    body = r.json()
    assert body["text"] == "" and body["segments"] == [] and body["duration"] == 2.0
    assert _post(server, silence, response_format="srt").text == ""
    assert len(fake.calls) == before  # the model never saw it


def test_size_and_duration_limits(server: str):
    big = wav_bytes(_tone(7.0, 16000), 16000)  # 224 kB > 200 kB
    _error(_post(server, big), 413, "file_too_large")
    # 6 s at 8 kHz is small enough but too long.
    long = wav_bytes(_tone(6.0, 8000), 8000)
    err = _error(_post(server, long), 413, "audio_too_long")
    assert "6.0 s" in str(err["message"])
    # Far past the body limit: the kit rejects it before the route reads it.
    _error(_post(server, b"\0" * 400_000), 413)


def test_bad_fields(server: str):
    wav = wav_bytes(_tone(1.0), RATE)
    err = _error(_post(server, wav, response_format="docx"), 400, "invalid_response_format")
    assert err["param"] == "response_format"
    _error(_post(server, wav, **{"timestamp_granularities[]": "char"}), 400, "invalid_granularity")
    _error(_post(server, wav, **{"timestamp_granularities[]": "word"}), 400, "invalid_granularity")
    _error(_post(server, wav, language="xx"), 400, "unsupported_language")
    _error(_post(server, wav, prompt="p" * 51), 400, "prompt_too_long")
    _error(_post(server, wav, stream="true"), 400, "unsupported_option")
    assert _error(_post(server, wav, temperature="1.5"), 422)["param"] == "temperature"
    assert _error(_post(server, wav, temperature="hot"), 422)["param"] == "temperature"


def test_models_and_metrics(server: str):
    models = httpx.get(server + "/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == "base"
    metrics = httpx.get(server + "/metrics").text
    assert "stt_audio_seconds_total" in metrics and "stt_queue_depth 0.0" in metrics
    assert 'stt_transcriptions_total{outcome="ok"}' in metrics


def test_queue_full_is_429_and_health_answers_while_busy():
    fake = GatedEngine()
    settings = Settings(max_concurrency=1, max_queue=1, log_json=False)
    wav = wav_bytes(_tone(1.0), RATE)
    with run_server(build_app(settings, engine_factory=lambda _s: fake)) as base:
        fake.block = True
        results: list[httpx.Response] = []
        threads = [
            threading.Thread(target=lambda: results.append(_post(base, wav))) for _ in range(2)
        ]
        threads[0].start()
        assert fake.started.wait(10)
        threads[1].start()
        for _ in range(100):  # wait until the second request is queued
            if "stt_queue_depth 1.0" in httpx.get(base + "/metrics").text:
                break
            threading.Event().wait(0.05)
        r = _post(base, wav)
        _error(r, 429, "queue_full")
        assert r.headers["retry-after"] == "1"
        assert httpx.get(base + "/health/live", timeout=2).status_code == 200
        assert httpx.get(base + "/health/ready", timeout=2).status_code == 200
        assert "stt_running 1.0" in httpx.get(base + "/metrics").text
        fake.gate.set()
        for t in threads:
            t.join(30)
        assert [r.status_code for r in results] == [200, 200]
        metrics = httpx.get(base + "/metrics").text
        assert 'stt_transcriptions_total{outcome="rejected"} 1.0' in metrics


def test_not_ready_until_loaded_then_ready_with_self_check():
    gate = threading.Event()
    fake = GatedEngine()

    def slow_factory(_s: Settings) -> GatedEngine:
        assert gate.wait(30)
        return fake

    app = build_app(Settings(log_json=False), engine_factory=slow_factory)
    with run_server(app, ready_path="/health/live") as base:
        r = httpx.get(base + "/health/ready")
        assert r.status_code == 503 and r.json()["reason"] == "loading"
        assert "stt_queue_depth 0.0" in httpx.get(base + "/metrics").text
        _error(_post(base, wav_bytes(_tone(1.0), RATE)), 503, "not_ready")
        gate.set()
        for _ in range(100):
            r = httpx.get(base + "/health/ready")
            if r.status_code == 200:
                break
            threading.Event().wait(0.05)
        body = r.json()
        assert body["status"] == "ready" and body["engine"] == "faster-whisper"
        assert "self_check_ms" in body
        assert len(fake.calls) == 1  # the self-check really ran the engine
