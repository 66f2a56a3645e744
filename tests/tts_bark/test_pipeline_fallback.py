"""One failover mechanism: tts-bark refuses, the orchestrator's pipeline falls back to tts-piper.

Real services on real uvicorn: tts-bark (no checkpoint, or a tiny one), tts-piper with the
joe voice, and an orchestrator whose `speak` pipeline lists them as primary and fallback.
The stage record, the orchestrator's metrics and the audio the user gets all show it.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from services.kit.audio import decode_audio
from services.orchestrator.app import build_app as build_orchestrator
from services.orchestrator.settings import Settings as OrchestratorSettings
from services.tts_bark.app import build_app as build_bark
from services.tts_bark.settings import Settings as BarkSettings
from services.tts_piper.app import build_app as build_piper
from services.tts_piper.settings import Settings as PiperSettings
from testkit.helpers import PIPER_VOICE, run_server
from testkit.models.tiny_bark import build_tiny_bark

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def piper_url() -> Iterator[str]:
    settings = PiperSettings(voice=str(PIPER_VOICE), download=False, wyoming_enabled=False)
    with run_server(build_piper(settings)) as url:
        yield url


@contextlib.contextmanager
def speak_pipeline(tmp_path: Path, bark: str, piper: str) -> Iterator[str]:
    """An orchestrator whose `speak` pipeline is tts-bark, then tts-piper."""
    doc: dict[str, Any] = {
        "active_pipeline": "speak",
        "system_prompt": {"version": "test-1", "text": "unused"},
        "providers": {
            "tts-bark": {"capability": "tts", "url": bark, "timeout_s": 60},
            "tts-piper": {"capability": "tts", "url": piper, "timeout_s": 60},
        },
        "pipelines": {"speak": [{"stage": "tts", "providers": ["tts-bark", "tts-piper"]}]},
    }
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    settings = OrchestratorSettings(
        pipelines_path=str(path),
        reload_poll_s=0,
        admin_open=True,
        log_json=False,
        api_keys="",
        admin_api_keys="",
        redis_url="",
    )
    with run_server(build_orchestrator(settings)) as url:
        yield url


def speak(orchestrator: str, text: str) -> dict[str, Any]:
    """One turn of the speak pipeline; the reply's JSON."""
    r = httpx.post(
        orchestrator + "/mcp/transcript",
        json={"transcript": text, "session_id": "bark-fallback", "audio": True},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def assert_piper_spoke_after_bark_refused(body: dict[str, Any], status: int) -> None:
    """The tts stage record names Bark's refusal and Piper's answer; the audio is Piper's."""
    tts = next(s for s in body["stages"] if s["stage"] == "tts")
    assert tts["status"] == "ok" and tts["provider"] == "tts-piper", tts
    assert tts["attempts"] == 2, tts
    first = tts["tried"][0]
    assert first["provider"] == "tts-bark" and f"HTTP {status}" in first["error"], tts
    assert body["tts_engine"] == "piper"
    audio = decode_audio(base64.b64decode(body["audio"]))
    assert audio.sample_rate == 22050 and audio.duration_s > 0.5


def test_bark_not_ready_falls_back_to_piper_in_the_pipeline(tmp_path, piper_url):
    bark_settings = BarkSettings(model=str(tmp_path / "no-checkpoint"), log_json=False)
    with (
        run_server(build_bark(bark_settings), ready_path=None) as bark,
        speak_pipeline(tmp_path, bark, piper_url) as orch,
    ):
        assert httpx.get(bark + "/health/ready").status_code == 503
        body = speak(orch, "The weather is fine today.")
        assert_piper_spoke_after_bark_refused(body, 503)
        assert (
            "not_ready" in body["stages"][0]["tried"][0]["error"]
            or "not ready" in (body["stages"][0]["tried"][0]["error"])
        )
        metrics = httpx.get(orch + "/metrics").text
        assert (
            'orchestrator_fallbacks_total{pipeline="speak",provider="tts-bark",stage="tts"} 1.0'
        ) in metrics
        assert (
            'orchestrator_stage_requests_total{outcome="transient_error",pipeline="speak",'
            'provider="tts-bark",stage="tts"} 1.0'
        ) in metrics
        assert (
            'orchestrator_stage_requests_total{outcome="ok",pipeline="speak",'
            'provider="tts-piper",stage="tts"} 1.0'
        ) in metrics


def test_text_too_long_for_bark_is_spoken_by_piper(tmp_path, piper_url):
    model = build_tiny_bark(tmp_path / "tiny-bark", presets={"v2/en_speaker_0": True})
    bark_settings = BarkSettings(
        model=str(model), max_chars=20, semantic_max_new_tokens=8, log_json=False
    )
    with (
        run_server(build_bark(bark_settings), timeout=180) as bark,
        speak_pipeline(tmp_path, bark, piper_url) as orch,
    ):
        body = speak(orch, "This reply is longer than the twenty characters Bark takes.")
        assert_piper_spoke_after_bark_refused(body, 503)
        assert "BARK_MAX_CHARS" in body["stages"][0]["tried"][0]["error"]
