"""A fake orchestrator speaking the real API (DESIGN.md), built on the service kit.

It decodes uploaded audio for real and answers with real Piper speech, and it exports the
orchestrator's metric names so the dashboard can be tested against a real Prometheus.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from prometheus_client import Counter, Histogram
from pydantic import BaseModel

from services.kit import ApiError, ServiceSettings, ServiceState, create_app
from services.kit.app import get_state
from services.kit.audio import decode_audio
from services.kit.metrics import LATENCY_BUCKETS
from testkit.fakes.records import stage_record
from testkit.helpers import synth_speech, wav_bytes


def _prov(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "url": f"http://{n}:1"} for n in names]


# The real orchestrator's /v1/pipelines shape: a name → description map.
PIPELINES = {
    "active_pipeline": "voice",
    "pipelines": {
        "voice": {
            "input": "audio",
            "stages": [
                {"stage": "stt", "providers": _prov("stt-local")},
                {"stage": "llm", "providers": _prov("llm-flan", "llm-backup")},
                {"stage": "tts", "providers": _prov("tts-bark", "tts-piper")},
            ],
        },
        "text": {"input": "text", "stages": [{"stage": "llm", "providers": _prov("llm-flan")}]},
    },
}


@dataclass
class Knobs:
    """Test controls: fail with a status, or leave audio out of text replies."""

    fail_status: int | None = None
    fail_message: str = "stage llm failed on every provider: llm-flan (connect error)"
    text_audio: bool = True
    calls: list[dict[str, Any]] = field(default_factory=list)


class TranscriptIn(BaseModel):
    transcript: str
    session_id: str | None = None
    pipeline: str | None = None
    audio: bool = False


def _stages(pipeline: str, voice: bool) -> list[dict[str, Any]]:
    stages = [stage_record("stt", "stt-local", "http://stt:9000", 120.5)] if voice else []
    stages.append(stage_record("llm", "llm-flan", "http://llm-flan:8100", 300.0))
    # The primary TTS refused, so the fallback served: the UI must say "fallback yes".
    tried = [
        {"provider": "tts-bark", "outcome": "transient_error", "error": "connect error"},
        {"provider": "tts-piper", "outcome": "ok", "error": None},
    ]
    stages.append(stage_record("tts", "tts-piper", "http://tts-piper:7000", 80.25, 2, tried=tried))
    return stages


@dataclass(frozen=True)
class FakeMetrics:
    """The orchestrator metrics the fake records, as the dashboard reads them."""

    hist: Histogram
    count: Counter
    fallbacks: Counter
    blocks: Counter


def build_fake_orchestrator(knobs: Knobs | None = None) -> Any:
    """A kit app with /v1/voice, /mcp/transcript, /v1/pipelines and orchestrator metrics."""
    knobs = knobs or Knobs()
    router = APIRouter()
    settings = ServiceSettings()
    cache: dict[str, str] = {}

    def speech_b64(text: str) -> str:
        if text not in cache:
            samples, rate = synth_speech(text, rate=None)
            cache[text] = base64.b64encode(wav_bytes(samples, rate)).decode()
        return cache[text]

    def record(state: ServiceState, pipeline: str, stages: list[dict[str, Any]]) -> None:
        m = state.require(FakeMetrics)
        hist, count, fallbacks = m.hist, m.count, m.fallbacks
        for s in stages:
            for t in s.get("tried", []):
                if t["outcome"] != "ok":
                    count.labels(pipeline, s["stage"], t["provider"], t["outcome"]).inc()
                    fallbacks.labels(pipeline, s["stage"], t["provider"]).inc()
            labels = (pipeline, s["stage"], s["provider"], "ok")
            hist.labels(*labels).observe(s["latency_ms"] / 1000.0)
            count.labels(*labels).inc()

    def check_failure() -> None:
        if knobs.fail_status:
            raise ApiError(knobs.fail_status, knobs.fail_message, code="stage_failed")

    @router.get("/v1/pipelines")
    async def pipelines() -> dict[str, Any]:
        return PIPELINES

    @router.post("/mcp/transcript")
    async def transcript(body: TranscriptIn, request: Request) -> dict[str, Any]:
        state = get_state(request)
        knobs.calls.append({"path": "/mcp/transcript", **body.model_dump()})
        check_failure()
        if not body.transcript.strip():
            raise ApiError(400, "transcript is empty", param="transcript")
        pipeline = body.pipeline or "voice"
        blocked = "ignore previous instructions" in body.transcript.lower()
        if blocked:
            state.require(FakeMetrics).blocks.labels("prompt_injection").inc()
        stages = _stages(pipeline, voice=False)
        record(state, pipeline, stages)
        response = "I can't help with that." if blocked else f"You asked: {body.transcript}"
        out: dict[str, Any] = {
            "response": response,
            "session_id": body.session_id or uuid.uuid4().hex,
            "pipeline": pipeline,
            "blocked": blocked,
            "stages": stages,
            "block_reason": "prompt_injection" if blocked else None,
        }
        if body.audio and knobs.text_audio:
            out["audio"] = speech_b64("Here is my answer.")
        return out

    @router.post("/v1/voice")
    async def voice(
        request: Request,
        file: UploadFile = File(...),  # noqa: B008
        session_id: str | None = Form(None),
        pipeline: str | None = Form(None),
        voice: str | None = Form(None),
    ) -> dict[str, Any]:
        state = get_state(request)
        data = await file.read()
        knobs.calls.append(
            {
                "path": "/v1/voice",
                "session_id": session_id,
                "pipeline": pipeline,
                "voice": voice,
                "bytes": len(data),
                "filename": file.filename,
            }
        )
        check_failure()
        audio = decode_audio(data)
        pipeline = pipeline or "voice"
        text = f"fake transcript of {audio.duration_s:.2f} seconds"
        stages = _stages(pipeline, voice=True)
        record(state, pipeline, stages)
        return {
            "transcript": text,
            "response": f"You said: {text}",
            "audio": speech_b64("Hello there."),
            "session_id": session_id or uuid.uuid4().hex,
            "pipeline": pipeline,
            "blocked": False,
            "stages": stages,
        }

    async def startup(state: ServiceState) -> None:
        labels = ["pipeline", "stage", "provider", "outcome"]
        reg = state.registry
        metrics = FakeMetrics(
            hist=Histogram(
                "orchestrator_stage_latency_seconds",
                "Stage latency.",
                labels,
                buckets=LATENCY_BUCKETS,
                registry=reg,
            ),
            count=Counter(
                "orchestrator_stage_requests_total", "Stage calls.", labels, registry=reg
            ),
            fallbacks=Counter(
                "orchestrator_fallbacks_total",
                "Moves from a provider to the next one.",
                ["pipeline", "stage", "provider"],
                registry=reg,
            ),
            blocks=Counter("guardrail_blocks_total", "Guardrail blocks.", ["reason"], registry=reg),
        )
        state.serve(metrics, engine="fake", model="none")

    app = create_app("orchestrator", settings, routers=[router], startup=startup)
    app.state.knobs = knobs
    app.state.started = time.time()
    return app
