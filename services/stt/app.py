"""App factory of the stt service."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import numpy as np
from fastapi import FastAPI

from services.kit import ServiceState, create_app
from services.kit.concurrency import WorkLimiter
from services.kit.wyoming import with_wyoming
from services.stt.backends import load_engine
from services.stt.engine import SAMPLE_RATE, ModelUnavailableError, SpeechToText, TranscribeOptions
from services.stt.metrics import SttMetrics
from services.stt.routes import router
from services.stt.service import Transcriber
from services.stt.settings import Settings
from services.stt.wyoming_server import make_server

log = logging.getLogger("stt.app")

EngineFactory = Callable[[Settings], SpeechToText]


def self_check_clip() -> np.ndarray:
    """Half a second of a 440 Hz tone then half a second of silence, at 16 kHz."""
    t = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    tone = 0.3 * np.sin(2 * np.pi * 440.0 * t)
    return np.concatenate([tone, np.zeros(SAMPLE_RATE // 2)]).astype(np.float32)


def build_app(
    settings: Settings | None = None, engine_factory: EngineFactory | None = None
) -> FastAPI:
    """Build the stt app; `engine_factory` replaces the configured backend (tests, embedding)."""
    settings = settings or Settings()
    factory = engine_factory or load_engine

    async def startup(state: ServiceState) -> None:
        state.readiness.engine = settings.engine
        state.readiness.model = settings.model_id()
        # Metrics exist from the first scrape, not only once the model is up.
        limiter = WorkLimiter(settings.max_concurrency, settings.max_queue, name="transcription")
        metrics = SttMetrics(state.registry, limiter)
        try:
            engine = await asyncio.wait_for(
                asyncio.to_thread(factory, settings), timeout=settings.load_timeout_s
            )
        except TimeoutError as exc:
            raise ModelUnavailableError(
                f"loading Whisper model {settings.model!r} took longer than "
                f"STT_LOAD_TIMEOUT_S={settings.load_timeout_s:g} s"
            ) from exc
        # Readiness means the model has answered: run a real transcription before saying so.
        started = time.perf_counter()
        check = await asyncio.to_thread(
            engine.transcribe, self_check_clip(), TranscribeOptions(beam_size=1)
        )
        if not isinstance(check.text, str) or check.duration <= 0:
            raise ModelUnavailableError("self-check transcription returned no result")
        state.resources["transcriber"] = Transcriber(engine, settings, limiter, metrics)
        state.readiness.details = {
            **engine.details,
            "self_check_ms": round((time.perf_counter() - started) * 1000.0, 1),
        }
        state.readiness.ready = True
        state.readiness.reason = "ok"

    started, stopped = with_wyoming(make_server(settings), startup)
    return create_app(
        "stt", settings, routers=[router], startup=started, shutdown=stopped, title="stt"
    )
