"""App factory for the guardrails service."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from services.guardrails.engine import (
    TextClassifier,
    load_injection,
    load_ngram,
    load_toxicity,
    self_check,
)
from services.guardrails.escalations import EscalationStore
from services.guardrails.injection import InjectionRules
from services.guardrails.metrics import GuardMetrics
from services.guardrails.ratelimit import build_limiter, install_rate_limiting
from services.guardrails.routes import build_router
from services.guardrails.settings import Settings
from services.kit import ServiceState, create_app


def build_app(settings: Settings | None = None) -> FastAPI:
    """Build the guardrails app; classifiers load in the background after startup."""
    settings = settings or Settings()
    limiter = build_limiter(settings)
    cfg = settings

    async def startup(state: ServiceState) -> None:
        from services.kit.concurrency import WorkLimiter

        state.resources["metrics"] = GuardMetrics(state.registry)
        state.resources["rules"] = InjectionRules()
        state.resources["work"] = WorkLimiter(cfg.max_concurrent, cfg.max_queue, "classifier")
        state.resources["escalations"] = await asyncio.to_thread(EscalationStore, cfg.escalation_db)
        # Counts must be shared as configured: an unreachable Redis keeps the service unready.
        if not await asyncio.to_thread(limiter._storage.check):
            raise RuntimeError("rate-limit storage is unreachable")
        details: dict[str, object] = {"rules": state.resources["rules"].size}
        toxicity: TextClassifier | None = await asyncio.to_thread(load_toxicity, cfg)
        if toxicity is not None:
            await asyncio.to_thread(self_check, toxicity)
        state.resources["toxicity"] = toxicity
        ngram = await asyncio.to_thread(load_ngram, cfg)
        if ngram is not None:
            await asyncio.to_thread(self_check, ngram[0])
            details["injection_classifier"] = f"ngram (threshold {ngram[1]:.3f})"
        state.resources["ngram"] = ngram
        injection: TextClassifier | None = await asyncio.to_thread(load_injection, cfg)
        if injection is not None:
            await asyncio.to_thread(self_check, injection)
            details["injection_model"] = injection.model
        state.resources["injection"] = injection
        details["rate_limit"] = cfg.rate_limit
        details["rate_limit_storage"] = cfg.limiter_storage_uri.split("://", 1)[0]
        state.readiness.engine = toxicity.engine if toxicity else "rules"
        state.readiness.model = toxicity.model if toxicity else None
        state.readiness.details = details
        state.readiness.reason = "ok"
        state.readiness.ready = True

    async def shutdown(state: ServiceState) -> None:
        store: EscalationStore | None = state.resources.get("escalations")
        if store is not None:
            await asyncio.to_thread(store.close)

    app = create_app(
        "guardrails",
        settings,
        routers=[build_router(limiter, settings.rate_limit)],
        startup=startup,
        shutdown=shutdown,
    )
    install_rate_limiting(app, limiter)
    return app
