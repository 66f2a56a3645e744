"""tts-bark app factory: serves through the Piper fallback while Bark loads or if it cannot."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import FastAPI

from services.kit import ServiceState, create_app
from services.kit.concurrency import WorkLimiter
from services.kit.http import make_client
from services.tts_bark.fallback import probe_piper
from services.tts_bark.metrics import FallbackMetrics
from services.tts_bark.routes import router
from services.tts_bark.settings import Settings
from services.tts_common.metrics import TtsMetrics
from services.tts_common.voices import OPENAI_VOICES

NAME = "tts-bark"
log = logging.getLogger("tts_bark.app")


def _load(settings: Settings) -> Any:
    from services.tts_bark.backends.bark_transformers import BarkEngine

    engine = BarkEngine(
        settings.model,
        device=settings.device,
        voice_preset=settings.voice_preset,
        semantic_max_new_tokens=settings.semantic_max_new_tokens,
        sentence_max_chars=settings.sentence_max_chars,
    )
    if settings.self_check:
        engine.self_check()
    return engine


async def refresh_readiness(state: ServiceState) -> None:
    """Ready = Bark loaded, or else the Piper fallback is ready (engine "piper-fallback")."""
    settings = state.settings
    assert isinstance(settings, Settings)
    r = state.readiness
    if state.resources.get("engine") is not None:
        return
    ok, why = await probe_piper(state.resources["client"], settings.fallback_url)
    if state.resources.get("engine") is not None:
        return  # Bark finished loading during the probe; its readiness stands
    bark_status = state.resources.get("bark_status", "loading")
    r.engine = "piper-fallback"
    r.model = settings.fallback_url or None
    r.details = {"bark": bark_status, "fallback": why}
    r.reason = f"Bark {bark_status}; {why}"
    r.ready = ok


async def _probe_loop(state: ServiceState, interval: float) -> None:
    while state.resources.get("engine") is None:
        await refresh_readiness(state)
        await asyncio.sleep(interval)


def build_app(settings: Settings | None = None) -> FastAPI:
    """The tts-bark FastAPI app."""
    settings = settings or Settings()

    async def startup(state: ServiceState) -> None:
        state.resources["limiter"] = WorkLimiter(
            settings.max_concurrent, settings.max_queue, name="bark generation"
        )
        # The Piper fallback is a mesh stage: it wants the mesh token like any other caller.
        token = settings.mesh_token.get_secret_value().strip() or None
        state.resources["client"] = make_client(settings.fallback_timeout_s, bearer=token)
        state.resources["bark_status"] = "loading"
        state.resources["probe"] = asyncio.create_task(
            _probe_loop(state, settings.probe_interval_s)
        )
        try:
            engine = await asyncio.to_thread(_load, settings)
        except Exception as exc:  # Bark failing to load is a state to serve through, not a crash
            state.resources["bark_status"] = f"load failed: {type(exc).__name__}: {exc}"[:300]
            log.error("Bark failed to load", extra={"error": type(exc).__name__}, exc_info=True)
            await refresh_readiness(state)
            return
        local = engine.voices()
        voice_map = {name: "default" for name in OPENAI_VOICES}
        voice_map.update({k: v for k, v in settings.voice_map.items() if v in local})
        state.resources["voice_map"] = voice_map
        state.resources["bark_status"] = "loaded"
        state.resources["engine"] = engine
        r = state.readiness
        r.engine, r.model, r.reason = "bark", settings.model, "ok"
        r.details = {"device": engine.device, "sample_rate": engine.rate, "presets": len(local) - 1}
        r.ready = True

    async def shutdown(state: ServiceState) -> None:
        probe = state.resources.get("probe")
        if probe is not None:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
        client = state.resources.get("client")
        if client is not None:
            await client.aclose()

    app = create_app(NAME, settings, routers=[router], startup=startup, shutdown=shutdown)
    state = app.state.service
    state.resources["metrics"] = TtsMetrics(state.registry)
    state.resources["fallback_metrics"] = FallbackMetrics(state.registry)
    return app
