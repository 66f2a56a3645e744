"""Bad input, feature flags, readiness reasons and metrics through the HTTP API."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from services.kit.audio import from_pcm16, to_pcm16
from services.preprocessor.app import build_app
from services.preprocessor.backends.passthrough import PassthroughEngine
from services.preprocessor.engine import DenoiseStream
from services.preprocessor.settings import Settings
from testkit.helpers import run_server, wav_bytes


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    """A passthrough server with a 2 s duration limit (validation is engine-independent)."""
    settings = Settings(engine="passthrough", max_duration_s=2.0, max_body_bytes=400_000)
    with run_server(build_app(settings)) as url:
        yield url


def _tone(rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def _err(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    err: dict[str, object] = r.json()["error"]
    assert err["code"] == code, err
    return err


def test_bad_input_is_a_clear_4xx(base: str) -> None:
    d = base + "/denoise"
    _err(
        httpx.post(d, content=b"definitely not audio", headers={"content-type": "audio/wav"}),
        415,
        "unsupported_audio",
    )
    _err(httpx.post(d, content=b"", headers={"content-type": "audio/wav"}), 400, "empty_audio")
    _err(httpx.post(d, files={"file": ("x.wav", b"", "audio/wav")}), 400, "empty_audio")
    _err(httpx.post(d, files={"other": ("x.wav", b"abc", "audio/wav")}), 400, "missing_file")
    _err(httpx.post(d, json={"file": "x"}), 415, "unsupported_media_type")
    truncated = wav_bytes(_tone(16000, 0.5), 16000)[:-100]
    _err(
        httpx.post(d, content=truncated, headers={"content-type": "audio/wav"}),
        400,
        "truncated_audio",
    )
    err = _err(
        httpx.post(d, content=wav_bytes(_tone(4000, 0.5), 4000)), 400, "unsupported_sample_rate"
    )
    assert "4000 Hz" in str(err["message"]) and "8000-48000" in str(err["message"])
    _err(httpx.post(d, content=wav_bytes(_tone(16000, 3.0), 16000)), 413, "audio_too_long")
    # Bodies over MAX_BODY_BYTES are refused by the kit before decoding.
    r = httpx.post(d, content=wav_bytes(_tone(48000, 5.0), 48000))
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"

    s = base + "/denoise/streaming"
    _err(httpx.post(s, content=b"\x00\x01\x02"), 400, "invalid_pcm")
    _err(httpx.post(s, content=b""), 400, "empty_audio")
    _err(
        httpx.post(s, params={"sample_rate": 96000}, content=b"\x00\x00"),
        400,
        "unsupported_sample_rate",
    )
    _err(
        httpx.post(s, params={"sample_rate": "fast"}, content=b"\x00\x00"), 422, "validation_error"
    )
    _err(
        httpx.post(s, params={"sample_rate": 8000}, content=to_pcm16(_tone(8000, 2.5))),
        413,
        "audio_too_long",
    )


def test_passthrough_returns_input_and_names_engine(base: str) -> None:
    tone = _tone(22050, 0.5)
    r = httpx.post(
        base + "/denoise", files={"file": ("t.wav", wav_bytes(tone, 22050), "audio/wav")}
    )
    assert r.status_code == 200 and r.headers["x-denoise-engine"] == "passthrough"
    assert r.content == wav_bytes(tone, 22050)
    pcm = to_pcm16(tone)
    r = httpx.post(base + "/denoise/streaming", params={"sample_rate": 22050}, content=pcm)
    assert r.content == pcm and r.headers["x-sample-rate"] == "22050"
    m = httpx.get(base + "/metrics").text
    assert 'denoise_audio_seconds_total{endpoint="denoise",engine="passthrough"} 0.5' in m
    assert "denoise_processing_seconds_bucket" in m


def test_enable_preprocessing_false_means_passthrough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENABLE_PREPROCESSING", "false")
    monkeypatch.setenv("DENOISE_ENGINE", "deepfilternet")
    settings = Settings()
    assert settings.engine == "deepfilternet" and not settings.enabled
    with run_server(build_app(settings)) as url:
        ready = httpx.get(url + "/health/ready").json()
        assert ready["engine"] == "passthrough" and ready["enabled"] is False
        assert ready["configured_engine"] == "deepfilternet"
        pcm = to_pcm16(_tone(16000, 0.2))
        r = httpx.post(url + "/denoise/streaming", content=pcm)
        assert r.headers["x-denoise-engine"] == "passthrough"
        np.testing.assert_array_equal(from_pcm16(r.content), from_pcm16(pcm))
    # The service's own variable wins over the mesh-wide flag.
    monkeypatch.setenv("DENOISE_ENABLED", "true")
    assert Settings().enabled


def _wait_for_reason(url: str) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = httpx.get(url + "/health/ready")
        body: dict[str, object] = r.json()
        if body.get("reason") not in ("starting", "loading"):
            return body
        time.sleep(0.05)
    raise AssertionError("readiness never settled")


def test_missing_dfn_model_is_a_clear_not_ready(tmp_path) -> None:
    settings = Settings(engine="deepfilternet", dfn_model_path=str(tmp_path / "nope.tar.gz"))
    with run_server(build_app(settings), ready_path=None) as url:
        body = _wait_for_reason(url)
        assert body["status"] == "not_ready"
        assert "DeepFilterNet model not found" in str(body["reason"])


class _BrokenEngine(PassthroughEngine):
    """Loads, but its streams answer NaN: the self-check must keep the service not ready."""

    name = "broken"

    def open_stream(self, sample_rate: int) -> DenoiseStream:
        return _NanStream()


class _NanStream(DenoiseStream):
    def push(self, samples: np.ndarray) -> np.ndarray:
        return np.full(len(samples), np.nan, dtype=np.float32)

    def finish(self) -> np.ndarray:
        return np.zeros(0, dtype=np.float32)


def test_an_engine_failing_its_self_check_is_not_ready() -> None:
    settings = Settings(engine="passthrough")
    with run_server(build_app(settings, lambda _: _BrokenEngine()), ready_path=None) as url:
        body = _wait_for_reason(url)
        assert body["status"] == "not_ready"
        assert "broken self-check produced invalid output" in str(body["reason"])
        r = httpx.post(url + "/denoise/streaming", content=to_pcm16(_tone(16000, 0.2)))
        _err(r, 503, "not_ready")


def test_readiness_reports_the_self_check() -> None:
    with run_server(build_app(Settings(engine="passthrough"))) as url:
        body = httpx.get(url + "/health/ready").json()
        assert body["model"] == "none" and body["realtime"] is True
        assert isinstance(body["self_check_ms"], float) and body["self_check_ms"] >= 0
