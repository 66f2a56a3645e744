"""App factory of the stt service."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI

from services.kit import ServiceState, create_app
from services.kit.concurrency import WorkLimiter
from services.kit.engine import load_checked
from services.kit.wyoming import with_wyoming
from services.stt.backends import load_engine
from services.stt.deps import Deps
from services.stt.engine import SpeechToText
from services.stt.metrics import SttMetrics
from services.stt.routes import router
from services.stt.service import Transcriber
from services.stt.settings import Settings
from services.stt.wyoming_server import make_server

log = logging.getLogger("stt.app")

EngineFactory = Callable[[Settings], SpeechToText]


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
        engine, details = await load_checked(
            factory, settings, what=f"Whisper model {settings.model!r}"
        )
        service = Transcriber(engine, settings, limiter, metrics)
        state.serve(Deps(settings, service), details=details)

    started, stopped = with_wyoming(make_server(settings), startup)
    return create_app(
        "stt", settings, routers=[router], startup=started, shutdown=stopped, title="stt"
    )
