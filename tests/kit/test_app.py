"""The service kit through real HTTP: health, readiness, errors, request IDs, limits, metrics."""

from __future__ import annotations

import asyncio
import io

import httpx
import numpy as np
import pytest
import soundfile as sf
from fastapi import APIRouter, Request
from pydantic import BaseModel

from services.kit import ApiError, ServiceSettings, ServiceState, create_app
from services.kit.app import get_state
from services.kit.audio import decode_audio, encode_audio, encode_wav
from testkit.helpers import run_server


class Echo(BaseModel):
    text: str


def _app(startup=None, max_body: int = 1000):
    router = APIRouter()

    @router.post("/echo")
    async def echo(body: Echo, request: Request) -> dict[str, str]:
        get_state(request).require_ready()
        return {"text": body.text}

    @router.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        data = await request.body()
        return {"n": len(data)}

    @router.post("/audio")
    async def audio(request: Request) -> dict[str, float]:
        a = decode_audio(await request.body(), 16000)
        return {"duration": a.duration_s}

    @router.get("/boom")
    async def boom() -> None:
        raise ApiError(409, "conflict here", param="x")

    settings = ServiceSettings(max_body_bytes=max_body)
    return create_app("demo", settings, routers=[router], startup=startup)


def test_health_errors_request_id_and_metrics():
    with run_server(_app()) as base:
        assert httpx.get(base + "/health/live").json() == {"status": "alive", "service": "demo"}
        assert httpx.get(base + "/health/ready").json()["status"] == "ready"
        r = httpx.post(base + "/echo", json={"text": "hi"}, headers={"X-Request-ID": "abc-123"})
        assert r.json() == {"text": "hi"} and r.headers["x-request-id"] == "abc-123"
        r = httpx.post(base + "/echo", json={"nope": 1})
        assert r.status_code == 422
        err = r.json()["error"]
        assert err["param"] == "text" and err["type"] == "invalid_request_error"
        assert len(r.headers["x-request-id"]) == 32
        r = httpx.post(
            base + "/echo", content=b"{bad json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 422 and "error" in r.json()
        r = httpx.get(base + "/boom")
        assert r.status_code == 409 and r.json()["error"]["message"] == "conflict here"
        r = httpx.get(base + "/nowhere")
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
        # A forged request ID with a newline is replaced, not echoed into logs.
        r = httpx.get(base + "/health/live", headers={"X-Request-ID": "a b"})
        assert r.headers["x-request-id"] != "a b"
        m = httpx.get(base + "/metrics").text
        assert (
            'http_requests_total{method="POST",route="/echo",service="demo",status="200"} 1.0' in m
        )
        assert 'route="/echo",service="demo",status="422"' in m
        assert "http_request_duration_seconds_bucket" in m


def test_body_limit_with_and_without_content_length():
    with run_server(_app(max_body=1000)) as base:
        assert httpx.post(base + "/raw", content=b"x" * 1000).json() == {"n": 1000}
        r = httpx.post(base + "/raw", content=b"x" * 1001)
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

        def chunks():
            for _ in range(20):
                yield b"y" * 100

        r = httpx.post(base + "/raw", content=chunks())  # chunked: no Content-Length
        assert r.status_code == 413


def test_readiness_waits_for_startup_and_reports_failure():
    gate = asyncio.Event()

    async def slow(state: ServiceState) -> None:
        await gate.wait()
        state.readiness.ready = True
        state.readiness.engine = "fake"

    app = _app(startup=slow)
    with run_server(app, ready_path="/health/live") as base:
        r = httpx.get(base + "/health/ready")
        assert r.status_code == 503 and r.json()["reason"] == "loading"
        r = httpx.post(base + "/echo", json={"text": "x"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        app.state.service.readiness.ready = True  # what the startup hook would do
        assert httpx.post(base + "/echo", json={"text": "x"}).status_code == 200

    async def broken(state: ServiceState) -> None:
        raise FileNotFoundError("no such model: /nope")

    with run_server(_app(startup=broken), ready_path="/health/live") as base:
        for _ in range(50):
            r = httpx.get(base + "/health/ready")
            if "startup failed" in r.json().get("reason", ""):
                break
        assert r.status_code == 503
        assert "FileNotFoundError: no such model: /nope" in r.json()["reason"]


def test_a_served_app_freezes_its_heap_once_started_and_a_test_app_does_not():
    import gc

    async def load(state: ServiceState) -> None:
        state.readiness.ready = True

    assert gc.get_freeze_count() == 0
    try:
        with run_server(_app(startup=load)) as base:  # built in this test process: no freeze
            assert httpx.get(base + "/health/ready").status_code == 200
            assert gc.get_freeze_count() == 0
        app = _app(startup=load)
        app.state.service.freeze_heap_when_started = True  # what kit.serve sets
        with run_server(app) as base:
            assert httpx.get(base + "/health/ready").status_code == 200
            assert gc.get_freeze_count() > 10_000  # the imported modules at least
    finally:
        gc.unfreeze()  # this is a test process: give its objects back to the collector


def test_audio_decode_formats_and_errors():
    rate = 22050
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for fmt in ("wav", "flac", "ogg"):
        data, _ = encode_audio(tone, rate, fmt)
        a = decode_audio(data, 16000)
        assert a.sample_rate == 16000 and abs(a.duration_s - 1.0) < 0.02, fmt
    stereo = io.BytesIO()
    sf.write(stereo, np.stack([tone, tone], axis=1), 48000, format="WAV")
    assert decode_audio(stereo.getvalue(), 16000).samples.ndim == 1
    wav = encode_wav(tone, rate)
    with pytest.raises(ApiError) as e:
        decode_audio(wav[: len(wav) // 2])
    assert e.value.status == 400 and "truncated" in e.value.message
    with pytest.raises(ApiError) as e:
        decode_audio(b"")
    assert e.value.status == 400
    with pytest.raises(ApiError) as e:
        decode_audio(b"this is not audio at all" * 10)
    assert e.value.status == 415
    # A streaming writer's header (unknown data size) is valid, not "truncated".
    streamed = wav[:40] + b"\xff\xff\xff\xff" + wav[44:]
    assert decode_audio(streamed).duration_s > 0.9
    with run_server(_app(max_body=10_000_000)) as base:
        r = httpx.post(base + "/audio", content=b"garbage" * 20)
        assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_audio"
        assert httpx.post(base + "/audio", content=wav).json()["duration"] == pytest.approx(
            1.0, abs=0.01
        )


def test_json_with_a_lone_surrogate_is_a_400_and_pairs_pass():
    with run_server(_app(max_body=100_000)) as base:
        headers = {"content-type": "application/json"}
        r = httpx.post(base + "/echo", content=b'{"text": "\\ud800hi"}', headers=headers)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_unicode"
        r = httpx.post(base + "/echo", content=b'{"text": "\\ud83d\\ude00 ok"}', headers=headers)
        assert r.status_code == 200 and r.json()["text"] == "\U0001f600 ok"
        # An escaped backslash followed by "ud800" is plain text, not a surrogate.
        r = httpx.post(base + "/echo", content=b'{"text": "\\\\ud800"}', headers=headers)
        assert r.status_code == 200 and r.json()["text"] == "\\ud800"
        r = httpx.post(base + "/echo", content=b"[" * 10_000, headers=headers)
        assert r.status_code in (400, 422) and r.json()["error"]["message"]


def test_non_finite_audio_samples_are_refused():
    for value in (np.nan, np.inf):
        buf = io.BytesIO()
        sf.write(buf, np.full(800, value, np.float32), 16000, format="WAV", subtype="FLOAT")
        with pytest.raises(ApiError) as e:
            decode_audio(buf.getvalue())
        assert e.value.status == 400 and e.value.code == "invalid_audio"
