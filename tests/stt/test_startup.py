"""Model loading failures are reported by readiness, quickly and clearly."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from services.stt.app import build_app
from services.stt.settings import Settings
from testkit.helpers import run_server


def _reason_when_failed(base: str, within_s: float) -> str:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        r = httpx.get(base + "/health/ready")
        assert r.status_code == 503
        reason: str = r.json()["reason"]
        if reason.startswith("startup failed"):
            return reason
        time.sleep(0.1)
    raise AssertionError(f"readiness still {reason!r} after {within_s} s")


@pytest.mark.slow
def test_hub_id_fails_fast_and_clearly_when_hub_is_offline(tmp_path: Path):
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE, "tests/conftest.py sets HF_HUB_OFFLINE=1"
    # An empty cache, so a model someone downloaded earlier cannot make this pass.
    settings = Settings(
        model="base", download_root=str(tmp_path), load_timeout_s=20, log_json=False
    )
    with run_server(build_app(settings), ready_path="/health/live") as base:
        reason = _reason_when_failed(base, within_s=20)
        r = httpx.post(base + "/transcribe", files={"file": ("a.wav", b"x", "audio/wav")})
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
    # Failed on the offline check, not on the load timeout.
    assert "ModelUnavailableError" in reason
    assert "could not be found locally" in reason and "hub is offline" in reason
    assert "STT_LOAD_TIMEOUT_S" not in reason


@pytest.mark.slow
def test_missing_local_directory_is_named(tmp_path: Path):
    missing = tmp_path / "whisper-nowhere"
    settings = Settings(model=str(missing), log_json=False)
    with run_server(build_app(settings), ready_path="/health/live") as base:
        reason = _reason_when_failed(base, within_s=20)
    assert str(missing) in reason and "not a CTranslate2 Whisper model directory" in reason


def test_load_timeout_is_reported():
    import threading

    release = threading.Event()

    def never_loads(_s: Settings) -> object:
        release.wait(30)
        raise RuntimeError("released")

    settings = Settings(load_timeout_s=0.3, log_json=False)
    app = build_app(settings, engine_factory=never_loads)  # type: ignore[arg-type]
    with run_server(app, ready_path="/health/live") as base:
        try:
            reason = _reason_when_failed(base, within_s=10)
        finally:
            # Free the loader thread first: server shutdown waits for its worker threads.
            release.set()
    assert "STT_LOAD_TIMEOUT_S=0.3" in reason
