"""App factory of the audio-preprocessor."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
from fastapi import FastAPI

from services.kit import ServiceState, create_app
from services.kit.concurrency import WorkLimiter
from services.preprocessor.backends import load_engine
from services.preprocessor.engine import DenoiseEngine, EngineUnavailable, denoise_clip
from services.preprocessor.metrics import DenoiseMetrics
from services.preprocessor.routes import router
from services.preprocessor.settings import Settings
from services.preprocessor.ws import ws_router

log = logging.getLogger("preprocessor")
NAME = "audio-preprocessor"


def self_check(engine: DenoiseEngine) -> None:
    """Denoise half a second of seeded noise; raise unless the output is sane."""
    rate = 16_000
    noise = (np.random.default_rng(0).standard_normal(rate // 2) * 0.1).astype(np.float32)
    out = denoise_clip(engine, noise, rate)
    if len(out) != len(noise) or not np.all(np.isfinite(out)):
        raise RuntimeError(f"{engine.name} self-check produced invalid output")


async def _startup(state: ServiceState) -> None:
    settings = state.settings
    assert isinstance(settings, Settings)
    wanted = settings.engine if settings.enabled else "passthrough"
    state.readiness.engine = wanted
    try:
        engine = await asyncio.to_thread(load_engine, settings)
    except EngineUnavailable as exc:
        # Not a crash: the service runs and says plainly which engine is missing and why.
        state.readiness.reason = str(exc)
        log.error("engine unavailable", extra={"engine": wanted, "error": str(exc)})
        return
    state.resources["engine"] = engine
    await asyncio.to_thread(self_check, engine)
    state.readiness.model = engine.model
    state.readiness.details = {
        "enabled": settings.enabled,
        "configured_engine": settings.engine,
        "realtime": engine.realtime,
    }
    state.readiness.reason = "ok"
    state.readiness.ready = True


async def _shutdown(state: ServiceState) -> None:
    engine = state.resources.pop("engine", None)
    if engine is not None:
        await asyncio.to_thread(engine.close)


def build_app(settings: Settings | None = None) -> FastAPI:
    """Build the audio-preprocessor app (engine loads in the background)."""
    settings = settings or Settings()
    app = create_app(
        NAME, settings, routers=[router, ws_router], startup=_startup, shutdown=_shutdown
    )
    state: ServiceState = app.state.service
    state.resources["limiter"] = WorkLimiter(settings.max_concurrent, settings.max_queue, "denoise")
    state.resources["metrics"] = DenoiseMetrics(state.registry)
    state.resources["streams"] = 0
    return app
