"""App factory of the llm-flan service."""

from __future__ import annotations

import asyncio
import time

from fastapi import FastAPI

from services.kit import ServiceState, create_app
from services.kit.concurrency import WorkLimiter
from services.llm.backends.common import pick_engine
from services.llm.engine import ChatEngine, ChatMessage, GenerationParams
from services.llm.generation import GenerationRunner
from services.llm.metrics import LlmMetrics, watch_loop_lag
from services.llm.routes import router
from services.llm.settings import Settings

SERVICE_NAME = "llm-flan"


def _load_engine(settings: Settings, engine: str) -> ChatEngine:
    # Backends are imported here so the app module stays importable without their libraries.
    if engine == "ctranslate2":
        from services.llm.backends.ctranslate2_backend import CTranslate2ChatEngine

        return CTranslate2ChatEngine.load(
            settings.model,
            served_name=settings.served_model_name,
            device=settings.device,
            compute_type=settings.ct2_compute_type,
            threads=settings.ct2_threads,
            # One CTranslate2 worker per generation slot, so the slots really run side by side.
            parallel=settings.max_concurrency,
        )
    from services.llm.backends.transformers_backend import TransformersChatEngine

    return TransformersChatEngine.load(
        settings.model,
        served_name=settings.served_model_name,
        device=settings.device,
        torch_threads=settings.torch_threads,
    )


def _self_check(engine: ChatEngine, max_input_tokens: int) -> int:
    prompt = engine.prepare([ChatMessage("user", "Say hello.")], max_input_tokens)
    outcome = engine.generate(
        prompt, GenerationParams(max_new_tokens=2), lambda _: None, lambda: False
    )
    if outcome.completion_tokens < 1:
        raise RuntimeError("self-check generated no tokens")
    return outcome.completion_tokens


def build_app(settings: Settings | None = None, engine: ChatEngine | None = None) -> FastAPI:
    """Build the LLM app; `engine` lets tests and benchmarks pass an already-loaded engine."""
    settings = settings or Settings()

    async def startup(state: ServiceState) -> None:
        if engine is not None:
            loaded = engine
        else:
            # Named before loading, so a model that fails to load reports which engine tried.
            state.readiness.engine = pick_engine(settings.engine, settings.model)
            loaded = await asyncio.to_thread(_load_engine, settings, state.readiness.engine)
        state.readiness.engine = loaded.engine
        state.readiness.model = loaded.model_id
        if settings.self_check:
            await asyncio.to_thread(_self_check, loaded, settings.max_input_tokens)
        limiter = WorkLimiter(settings.max_concurrency, settings.max_queue, name="llm")
        metrics: LlmMetrics = state.resources["metrics"]
        state.resources["loop_watcher"] = asyncio.create_task(watch_loop_lag(metrics))
        metrics.bind(loaded.model_id)
        state.resources.update(
            engine=loaded,
            limiter=limiter,
            runner=GenerationRunner(loaded, limiter, metrics, settings.stream_idle_timeout_s),
            created=int(time.time()),
        )
        state.readiness.details = {"kind": loaded.kind}
        state.readiness.ready = True
        state.readiness.reason = "ok"

    async def shutdown(state: ServiceState) -> None:
        watcher: asyncio.Task[None] | None = state.resources.pop("loop_watcher", None)
        if watcher is not None:
            watcher.cancel()

    app = create_app(SERVICE_NAME, settings, routers=[router], startup=startup, shutdown=shutdown)
    state: ServiceState = app.state.service
    # Metrics exist from the start so /metrics shows them (at zero) while the model loads.
    state.resources["metrics"] = LlmMetrics(state.registry)
    return app
