"""tts-piper app factory: loads the voices off the event loop, then serves the speech API."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from services.kit import ServiceState, create_app
from services.kit.concurrency import WorkLimiter
from services.kit.engine import load_checked
from services.kit.wyoming import with_wyoming
from services.tts_common.metrics import TtsMetrics
from services.tts_common.voices import openai_voice_map
from services.tts_piper.backends import load_engine
from services.tts_piper.deps import Deps
from services.tts_piper.engine import PiperSpeech
from services.tts_piper.routes import router
from services.tts_piper.service import PiperSpeaker
from services.tts_piper.settings import Settings
from services.tts_piper.wyoming_server import make_server

NAME = "tts-piper"

EngineFactory = Callable[[Settings], PiperSpeech]


def build_app(
    settings: Settings | None = None, engine_factory: EngineFactory | None = None
) -> FastAPI:
    """The tts-piper app; `engine_factory` replaces the configured backend (tests, embedding)."""
    settings = settings or Settings()
    factory = engine_factory or load_engine

    async def startup(state: ServiceState) -> None:
        state.readiness.engine = "piper"
        # Metrics exist from the first scrape, not only once the voices are up.
        metrics = TtsMetrics(state.registry)
        limiter = WorkLimiter(settings.max_concurrent, settings.max_queue, name="piper synthesis")
        engine, details = await load_checked(
            factory, settings, what=f"Piper voice {settings.voice!r}"
        )
        voices = engine.voices()
        service = PiperSpeaker(
            engine,
            voice_map=openai_voice_map(voices, settings.voice_map),
            limiter=limiter,
            metrics=metrics,
            max_chars=settings.max_chars,
        )
        state.serve(Deps(settings, service), engine=engine.name, model=voices[0], details=details)

    started, stopped = with_wyoming(make_server(settings), startup)
    return create_app(NAME, settings, routers=[router], startup=started, shutdown=stopped)
