"""App factory: config, shared HTTP client, history store, runner, hot-reload watcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from pathlib import Path

from fastapi import FastAPI

from services.kit import ServiceState, create_app
from services.kit.auth import split_keys
from services.kit.wyoming import with_wyoming
from services.orchestrator.backends import open_llm_client
from services.orchestrator.balancer import (
    Balancer,
    BalancerSettings,
    Resolver,
    dns_resolve,
)
from services.orchestrator.breaker import BreakerBoard
from services.orchestrator.config import Flags
from services.orchestrator.deps import Deps, LiveSessions
from services.orchestrator.executor import StageExecutor
from services.orchestrator.history import open_history
from services.orchestrator.metrics import OrchestratorMetrics, ReplicaMetrics
from services.orchestrator.pipeline import Runner
from services.orchestrator.realtime.route import realtime_router
from services.orchestrator.routes import admin, router
from services.orchestrator.run import StageKit
from services.orchestrator.runtime import ConfigManager
from services.orchestrator.settings import Settings
from services.orchestrator.stages import ReplyLimits, StageClient, make_session
from services.orchestrator.wyoming_server import make_server

log = logging.getLogger("orchestrator")


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def build_app(settings: Settings | None = None, resolver: Resolver | None = None) -> FastAPI:
    """Build the orchestrator app (`resolver`: how provider hosts resolve; DNS by default)."""
    settings = settings or Settings()
    # httpx (the LangChain client's transport) logs every call at INFO: lines the stage
    # records and metrics already carry, at a measurable cost on the hot path.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # What startup opened, closed at shutdown in reverse order (also after a failed startup).
    opened = contextlib.AsyncExitStack()

    async def startup(state: ServiceState) -> None:
        if not split_keys(settings.api_keys):
            log.warning("open: no ORCHESTRATOR_API_KEYS, development only")
        if not split_keys(settings.admin_api_keys):
            log.info("admin routes disabled: no ADMIN_API_KEYS")
        metrics = OrchestratorMetrics(state.registry)
        session = make_session(max_connections=200)
        opened.push_async_callback(session.close)
        # One balancer for both clients: replicas' in-flight counts add up across them.
        balancer = None
        if settings.balance_replicas:
            balancer = Balancer(
                BalancerSettings(
                    settings.replica_refresh_s,
                    settings.replica_failures,
                    settings.replica_cooldown_s,
                    settings.replica_connect_timeout_s,
                ),
                resolver or dns_resolve,
                ReplicaMetrics(state.registry),
            )
            opened.push_async_callback(balancer.aclose)
        flags = Flags(
            settings.enable_preprocessing,
            settings.enable_guardrails,
            settings.guardrails_fail_mode == "open",
        )
        manager = ConfigManager(Path(settings.pipelines_path), flags, metrics)
        await manager.load("startup")  # a bad file at startup → readiness says why

        def circuit_changed(provider: str, is_open: bool) -> None:
            metrics.circuit_open.labels(provider).set(1 if is_open else 0)
            log.warning(
                "circuit %s", "opened" if is_open else "closed", extra={"provider": provider}
            )

        breakers = BreakerBoard(
            settings.breaker_failures, settings.breaker_cooldown_s, circuit_changed
        )
        store = await open_history(settings)
        opened.push_async_callback(store.close)
        stage_client = StageClient(
            session,
            ReplyLimits(settings.max_reply_json_bytes, settings.max_reply_audio_bytes),
            balancer,
        )
        llm = await open_llm_client(
            settings.llm_client,
            stage_client,
            timeout_s=settings.default_timeout_s,
            max_reply_bytes=settings.max_reply_json_bytes,
            balancer=balancer,
        )
        opened.push_async_callback(llm.aclose)
        kit = StageKit(
            StageExecutor(breakers, metrics, settings.default_timeout_s),
            stage_client,
            llm,
            store,
            metrics,
            settings.refusal_message,
            settings.max_tool_rounds,
            # ORCH_CANARY_KEY when set, else a random key for this process's life.
            settings.canary_key.get_secret_value().encode() or secrets.token_bytes(32),
            denoise_min_snr_db=settings.denoise_min_snr_db,
        )
        if settings.reload_poll_s > 0:
            watcher = asyncio.create_task(manager.watch(settings.reload_poll_s))
            opened.push_async_callback(_cancel, watcher)
        deps = Deps(
            settings,
            Runner(manager, kit),
            breakers,
            balancer,
            LiveSessions(settings.realtime_max_sessions),
        )
        state.serve(
            deps,
            engine="pipelines",
            model=manager.current.loaded.file.active_pipeline,
            details={"history": store.name},
        )

    async def shutdown(state: ServiceState) -> None:
        await opened.aclose()

    started, stopped = with_wyoming(make_server(settings), startup, shutdown)
    return create_app(
        "orchestrator",
        settings,
        routers=[router, admin, realtime_router],
        startup=started,
        shutdown=stopped,
        title="Audio Orchestrator",
        mesh_auth=False,  # clients use ORCHESTRATOR_API_KEYS (auth.py), not the mesh token
    )
