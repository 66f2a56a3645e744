"""App factory for the guardrails service."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI

from services.guardrails.backends import load_engine
from services.guardrails.deps import Deps
from services.guardrails.escalations import EscalationStore
from services.guardrails.injection import InjectionRules
from services.guardrails.metrics import GuardMetrics
from services.guardrails.ratelimit import build_limiter, install_rate_limiting
from services.guardrails.routes import build_router
from services.guardrails.service import Guard
from services.guardrails.settings import Settings
from services.kit import ServiceState, create_app
from services.kit.concurrency import WorkLimiter
from services.kit.engine import load_checked


def build_app(settings: Settings | None = None) -> FastAPI:
    """Build the guardrails app; classifiers load in the background after startup."""
    settings = settings or Settings()
    limiter = build_limiter(settings)
    # What startup opens and shutdown closes (the escalation database).
    opened = contextlib.ExitStack()

    async def startup(state: ServiceState) -> None:
        metrics = GuardMetrics(state.registry)
        rules = InjectionRules()
        # Counts must be shared as configured: an unreachable Redis keeps the service unready.
        if not await asyncio.to_thread(limiter._storage.check):
            raise RuntimeError("rate-limit storage is unreachable")
        classifiers, checked = await load_checked(
            load_engine, settings, what="the guardrail classifiers"
        )
        store = await asyncio.to_thread(EscalationStore, settings.escalation_db)
        opened.callback(store.close)
        work = WorkLimiter(settings.max_concurrent, settings.max_queue, "classifier")
        details: dict[str, object] = {
            "rules": rules.size,
            **checked,
            "rate_limit": settings.rate_limit,
            "rate_limit_storage": settings.limiter_storage_uri.split("://", 1)[0],
        }
        state.serve(
            Deps(settings, Guard(settings, classifiers, rules, work, metrics, store)),
            engine=classifiers.name,
            model=classifiers.model,
            details=details,
        )

    async def shutdown(state: ServiceState) -> None:
        await asyncio.to_thread(opened.close)

    app = create_app(
        "guardrails",
        settings,
        routers=[build_router(limiter, settings.rate_limit)],
        startup=startup,
        shutdown=shutdown,
    )
    install_rate_limiting(app, limiter)
    return app
