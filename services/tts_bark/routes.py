"""tts-bark endpoints: Bark when it can, otherwise the Piper service (said in X-TTS-Engine)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

from services.kit import ApiError, ServiceState
from services.kit.app import get_state
from services.kit.audio import encode_audio
from services.kit.concurrency import WorkLimiter
from services.kit.limits import check_text_length
from services.tts_bark.fallback import call_piper
from services.tts_bark.metrics import FallbackMetrics
from services.tts_bark.settings import Settings
from services.tts_common.metrics import TtsMetrics
from services.tts_common.schemas import SpeechRequest, SynthesizeRequest
from services.tts_common.streaming import MEDIA_TYPES
from services.tts_common.voices import OPENAI_VOICES, resolve_voice

router = APIRouter(tags=["tts"])
log = logging.getLogger("tts_bark.routes")


def _settings(state: ServiceState) -> Settings:
    settings = state.settings
    assert isinstance(settings, Settings)
    return settings


async def _generate(state: ServiceState, engine: Any, text: str, voice: str) -> np.ndarray:
    """Run Bark in a thread under the limiter; the slot stays taken until the thread ends."""
    limiter: WorkLimiter = state.resources["limiter"]
    await limiter.acquire()
    loop = asyncio.get_running_loop()
    try:
        fut: asyncio.Future[np.ndarray] = loop.run_in_executor(
            None, lambda: np.concatenate(list(engine.synthesize(text, voice, 1.0)))
        )
    except BaseException:
        limiter.release()
        raise

    def _done(f: asyncio.Future[np.ndarray]) -> None:
        # A timed-out generation keeps running (threads cannot be killed), so it keeps its slot.
        limiter.release()
        if not f.cancelled():
            f.exception()  # retrieved so a late failure is not reported as "never retrieved"

    fut.add_done_callback(_done)
    return await asyncio.shield(fut)


async def _bark_or_fallback(
    request: Request,
    text: str,
    voice: str,
    speed: float,
    fmt: str,
    path: str,
    payload: dict[str, Any],
    param: str,
) -> Response:
    state = get_state(request)
    settings = _settings(state)
    check_text_length(text, settings.max_input_chars, param, code="input_too_long")
    engine = state.resources.get("engine")
    reason: str
    if engine is None:
        reason = "not_loaded"
    elif len(text) > settings.max_chars:
        reason = "too_long"
    elif speed != 1.0:
        reason = "speed"
    else:
        bark_voice = resolve_voice(voice, engine.voices(), state.resources["voice_map"])
        started = time.perf_counter()
        try:
            audio = await asyncio.wait_for(
                _generate(state, engine, text, bark_voice), settings.timeout_s
            )
        except ApiError as exc:
            if exc.status != 429:
                raise
            reason = "busy"
        except TimeoutError:
            reason = "timeout"
        except Exception as exc:  # any Bark failure is answered by Piper, and counted
            log.error("Bark generation failed", extra={"error": type(exc).__name__}, exc_info=True)
            reason = "error"
        else:
            metrics: TtsMetrics = state.resources["metrics"]
            elapsed = time.perf_counter() - started
            metrics.synthesis_seconds.labels("bark").observe(elapsed)
            metrics.first_chunk_seconds.labels("bark").observe(elapsed)
            metrics.audio_seconds.labels("bark").inc(audio.size / engine.rate)
            metrics.characters.labels("bark").inc(len(text))
            data, _ = await asyncio.to_thread(encode_audio, audio, engine.rate, fmt)
            return Response(
                data,
                media_type=MEDIA_TYPES[fmt],
                headers={
                    "X-TTS-Engine": "bark",
                    "X-TTS-Voice": bark_voice,
                    "X-Sample-Rate": str(engine.rate),
                },
            )
    log.warning("falling back to Piper", extra={"reason": reason})
    fb: FallbackMetrics = state.resources["fallback_metrics"]
    fb.fallback.labels(reason).inc()
    requested = payload.get("voice")
    if engine is not None and requested not in OPENAI_VOICES and requested in engine.voices():
        # A Bark preset means nothing to Piper; any other name Piper judges itself.
        payload["voice"] = settings.fallback_voice
    try:
        return await call_piper(
            state.resources["client"], settings.fallback_url, path, payload, reason
        )
    except ApiError:
        fb.failures.labels(reason).inc()
        raise


@router.post("/v1/audio/speech", response_model=None)
async def speech(body: SpeechRequest, request: Request) -> Response:
    """OpenAI-compatible speech from Bark, or from Piper with X-TTS-Engine: piper."""
    payload = body.model_dump(exclude_none=True)
    return await _bark_or_fallback(
        request,
        body.input,
        body.voice,
        body.speed,
        body.response_format,
        "/v1/audio/speech",
        payload,
        "input",
    )


@router.post("/synthesize", response_model=None)
async def synthesize(body: SynthesizeRequest, request: Request) -> Response:
    """The seed's endpoint: `{text, voice}` → audio/wav with X-TTS-Engine bark or piper."""
    payload = body.model_dump()
    return await _bark_or_fallback(
        request, body.text, body.voice, 1.0, "wav", "/synthesize", payload, "text"
    )


@router.get("/voices")
async def voices(request: Request) -> dict[str, Any]:
    """Bark's voices and presets (when loaded) and what OpenAI names map to."""
    state = get_state(request)
    state.require_ready()
    engine = state.resources.get("engine")
    settings = _settings(state)
    if engine is None:
        return {
            "engine": "piper-fallback",
            "bark": state.resources.get("bark_status"),
            "voices": [],
            "openai_voices": {},
            "fallback": settings.fallback_url,
        }
    return {
        "engine": "bark",
        "default": "default",
        "default_preset": engine.default_preset,
        "voices": [{"name": n, "sample_rate": engine.rate} for n in engine.voices()],
        "openai_voices": state.resources["voice_map"],
        "fallback": settings.fallback_url,
    }
