"""App factory: config, shared HTTP client, history store, runner, hot-reload watcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from fastapi import FastAPI

from services.kit import ServiceState, create_app
from services.kit.auth import split_keys
from services.kit.http import make_client
from services.kit.wyoming import with_wyoming
from services.orchestrator.balancer import (
    BalancedTransport,
    Balancer,
    BalancerSettings,
    Resolver,
    dns_resolve,
)
from services.orchestrator.breaker import BreakerBoard
from services.orchestrator.config import Flags
from services.orchestrator.engine import HistoryStore
from services.orchestrator.executor import StageExecutor
from services.orchestrator.metrics import OrchestratorMetrics, ReplicaMetrics
from services.orchestrator.pipeline import Runner
from services.orchestrator.realtime.route import realtime_router
from services.orchestrator.routes import admin, router
from services.orchestrator.runtime import ConfigManager
from services.orchestrator.settings import Settings
from services.orchestrator.stages import ReplyLimits, StageClient, make_session
from services.orchestrator.wyoming_server import make_server

log = logging.getLogger("orchestrator")


async def _history_store(settings: Settings) -> HistoryStore:
    if settings.redis_url:
        from services.orchestrator.backends.redis import RedisHistoryStore

        store = RedisHistoryStore(
            settings.redis_url, settings.session_ttl_s, settings.session_max_turns * 2
        )
        await store.ping()
        return store
    from services.orchestrator.backends.memory import MemoryHistoryStore

    return MemoryHistoryStore(
        settings.session_ttl_s, settings.session_max_turns * 2, settings.max_sessions
    )


def build_app(settings: Settings | None = None, resolver: Resolver | None = None) -> FastAPI:
    """Build the orchestrator app (`resolver`: how provider hosts resolve; DNS by default)."""
    settings = settings or Settings()
    # httpx (the LangChain client's transport) logs every call at INFO: lines the stage
    # records and metrics already carry, at a measurable cost on the hot path.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    async def startup(state: ServiceState) -> None:
        if not split_keys(settings.api_keys):
            log.warning("open: no ORCHESTRATOR_API_KEYS, development only")
        if not split_keys(settings.admin_api_keys):
            log.info("admin routes disabled: no ADMIN_API_KEYS")
        metrics = OrchestratorMetrics(state.registry)
        session = make_session(max_connections=200)
        state.resources["session"] = session
        # One balancer for both clients: replicas' in-flight counts add up across them.
        balancer = (
            Balancer(
                BalancerSettings(
                    settings.replica_refresh_s,
                    settings.replica_failures,
                    settings.replica_cooldown_s,
                    settings.replica_connect_timeout_s,
                ),
                resolver or dns_resolve,
                ReplicaMetrics(state.registry),
            )
            if settings.balance_replicas
            else None
        )
        state.resources["balancer"] = balancer
        langchain = settings.llm_client == "langchain"
        # ChatOpenAI needs an httpx client; the stage calls go over the aiohttp session.
        client = (
            make_client(
                settings.default_timeout_s,
                max_connections=200,
                # LangChain reads chat completions (JSON) only: the same cap as the plain client.
                max_response_bytes=settings.max_reply_json_bytes,
                wrap=(lambda t: BalancedTransport(t, balancer)) if balancer else None,
            )
            if langchain
            else None
        )
        state.resources["http"] = client
        flags = Flags(
            settings.enable_preprocessing,
            settings.enable_guardrails,
            settings.guardrails_fail_mode == "open",
        )
        manager = ConfigManager(Path(settings.pipelines_path), flags, client, metrics)
        await manager.load("startup")  # a bad file at startup → readiness says why
        state.resources["config"] = manager

        def circuit_changed(provider: str, is_open: bool) -> None:
            metrics.circuit_open.labels(provider).set(1 if is_open else 0)
            log.warning(
                "circuit %s", "opened" if is_open else "closed", extra={"provider": provider}
            )

        breakers = BreakerBoard(
            settings.breaker_failures, settings.breaker_cooldown_s, circuit_changed
        )
        state.resources["breakers"] = breakers
        store = await _history_store(settings)
        state.resources["store"] = store
        executor = StageExecutor(breakers, metrics, settings.default_timeout_s)
        state.resources["runner"] = Runner(
            manager,
            executor,
            StageClient(
                session,
                ReplyLimits(settings.max_reply_json_bytes, settings.max_reply_audio_bytes),
                balancer,
            ),
            store,
            metrics,
            settings.refusal_message,
            settings.max_tool_rounds,
        )
        if settings.reload_poll_s > 0:
            state.resources["watcher"] = asyncio.create_task(manager.watch(settings.reload_poll_s))
        runtime = manager.current
        state.readiness.engine = "pipelines"
        state.readiness.model = runtime.loaded.file.active_pipeline
        state.readiness.details = {"history": store.name}
        state.readiness.reason = "ok"
        state.readiness.ready = True

    async def shutdown(state: ServiceState) -> None:
        watcher = state.resources.pop("watcher", None)
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        store = state.resources.pop("store", None)
        if store is not None:
            await store.close()
        client = state.resources.pop("http", None)
        if client is not None:
            await client.aclose()
        session = state.resources.pop("session", None)
        if session is not None:
            await session.close()
        balancer = state.resources.pop("balancer", None)
        if balancer is not None:
            await balancer.aclose()

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
