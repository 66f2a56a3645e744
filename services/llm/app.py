"""App factory of the llm-flan service."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from fastapi import FastAPI

from services.kit import ServiceState, create_app
from services.kit.concurrency import WorkLimiter
from services.kit.engine import load_checked
from services.llm.backends import load_engine
from services.llm.backends.common import pick_engine
from services.llm.deps import Deps
from services.llm.engine import ChatEngine
from services.llm.metrics import LlmMetrics, watch_loop_lag
from services.llm.routes import router
from services.llm.service import GenerationRunner
from services.llm.settings import Settings

SERVICE_NAME = "llm-flan"

EngineFactory = Callable[[Settings], ChatEngine]


def build_app(
    settings: Settings | None = None, engine_factory: EngineFactory | None = None
) -> FastAPI:
    """Build the LLM app; `engine_factory` replaces the configured backend (tests, benchmarks)."""
    settings = settings or Settings()
    factory = engine_factory or load_engine
    # What startup starts and shutdown stops (the event-loop lag sampler).
    running = contextlib.ExitStack()

    async def startup(state: ServiceState) -> None:
        # Named before loading, so a model that fails to load reports which engine tried.
        state.readiness.engine = pick_engine(settings.engine, settings.model)
        # Metrics exist from the first scrape (at zero), not only once the model is up.
        metrics = LlmMetrics(state.registry)
        engine, details = await load_checked(factory, settings, what=f"model {settings.model!r}")
        running.callback(asyncio.create_task(watch_loop_lag(metrics)).cancel)
        metrics.bind(engine.model_id)
        limiter = WorkLimiter(settings.max_concurrency, settings.max_queue, name="llm")
        service = GenerationRunner(engine, limiter, metrics, settings.stream_idle_timeout_s)
        state.serve(
            Deps(settings, service, created=int(time.time())),
            engine=engine.name,
            model=engine.model_id,
            details=details,
        )

    async def shutdown(state: ServiceState) -> None:
        running.close()

    return create_app(SERVICE_NAME, settings, routers=[router], startup=startup, shutdown=shutdown)
