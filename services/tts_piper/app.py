"""tts-piper app factory: loads the voices off the event loop, then serves the speech API."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI

from services.kit import ServiceState, create_app
from services.kit.concurrency import WorkLimiter
from services.kit.wyoming import with_wyoming
from services.tts_common.metrics import TtsMetrics
from services.tts_common.voices import openai_voice_map
from services.tts_piper.routes import router
from services.tts_piper.settings import Settings
from services.tts_piper.wyoming_server import make_server

NAME = "tts-piper"


def _load(settings: Settings) -> object:
    from services.tts_piper.backends.piper_voice import PiperEngine, find_voice_files

    voices_dir = Path(settings.voices_dir or "voices").expanduser()
    files = find_voice_files(settings.voice, voices_dir, settings.download)
    engine = PiperEngine(files, settings.sentence_max_chars)
    engine.self_check()
    return engine


def build_app(settings: Settings | None = None) -> FastAPI:
    """The tts-piper FastAPI app."""
    settings = settings or Settings()

    async def startup(state: ServiceState) -> None:
        state.resources["limiter"] = WorkLimiter(
            settings.max_concurrent, settings.max_queue, name="piper synthesis"
        )
        engine = await asyncio.to_thread(_load, settings)
        state.resources["engine"] = engine
        voices = engine.voices()  # type: ignore[attr-defined]
        state.resources["voice_map"] = openai_voice_map(voices, settings.voice_map)
        state.readiness.engine = "piper"
        state.readiness.model = voices[0]
        state.readiness.details = {"voices": voices}
        state.readiness.reason = "ok"
        state.readiness.ready = True

    started, stopped = with_wyoming(make_server(settings), startup)
    app = create_app(NAME, settings, routers=[router], startup=started, shutdown=stopped)
    app.state.service.resources["metrics"] = TtsMetrics(app.state.service.registry)
    return app
