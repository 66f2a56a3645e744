"""App factory of the audio-preprocessor."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fastapi import FastAPI

from services.kit import ServiceState, create_app
from services.kit.concurrency import WorkLimiter
from services.kit.engine import EngineUnavailableError, load_checked
from services.preprocessor.backends import load_engine
from services.preprocessor.deps import Deps
from services.preprocessor.engine import DenoiseEngine
from services.preprocessor.metrics import DenoiseMetrics
from services.preprocessor.routes import router
from services.preprocessor.service import Denoiser
from services.preprocessor.settings import Settings
from services.preprocessor.ws import ws_router

log = logging.getLogger("preprocessor")
NAME = "audio-preprocessor"

EngineFactory = Callable[[Settings], DenoiseEngine]


def build_app(
    settings: Settings | None = None, engine_factory: EngineFactory | None = None
) -> FastAPI:
    """Build the audio-preprocessor app; `engine_factory` replaces the configured backend."""
    settings = settings or Settings()
    factory = engine_factory or load_engine
    loaded: list[DenoiseEngine] = []  # what shutdown releases

    async def startup(state: ServiceState) -> None:
        wanted = settings.engine if settings.enabled else "passthrough"
        state.readiness.engine = wanted
        # Metrics exist from the first scrape, not only once the engine is up.
        limiter = WorkLimiter(settings.max_concurrent, settings.max_queue, "denoise")
        metrics = DenoiseMetrics(state.registry)
        try:
            engine, details = await load_checked(
                factory, settings, what=f"denoising engine {wanted!r}"
            )
        except EngineUnavailableError as exc:
            # Not a crash: the service runs and says plainly which engine is missing and why.
            state.readiness.reason = str(exc)
            log.error("engine unavailable", extra={"engine": wanted, "error": str(exc)})
            return
        loaded.append(engine)
        details.update(enabled=settings.enabled, configured_engine=settings.engine)
        service = Denoiser(engine, settings, limiter, metrics)
        state.serve(Deps(settings, service), model=engine.model, details=details)

    async def shutdown(_: ServiceState) -> None:
        while loaded:
            await asyncio.to_thread(loaded.pop().close)

    return create_app(
        NAME, settings, routers=[router, ws_router], startup=startup, shutdown=shutdown
    )
