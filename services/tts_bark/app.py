"""tts-bark app factory: loads Bark off the event loop; 503 `not_ready` until it has loaded.

There is no fallback inside the service: when Bark is loading, cannot load or refuses a
request, the orchestrator's pipeline moves on to its next TTS provider (tts-piper).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from services.kit import ServiceState, create_app
from services.kit.concurrency import WorkLimiter
from services.kit.engine import load_checked
from services.tts_bark.backends import load_engine
from services.tts_bark.deps import Deps
from services.tts_bark.engine import BarkSpeech
from services.tts_bark.routes import router
from services.tts_bark.service import BarkSpeaker
from services.tts_bark.settings import Settings
from services.tts_common.metrics import TtsMetrics

NAME = "tts-bark"

EngineFactory = Callable[[Settings], BarkSpeech]


def build_app(
    settings: Settings | None = None, engine_factory: EngineFactory | None = None
) -> FastAPI:
    """The tts-bark app; `engine_factory` replaces the configured backend (tests, embedding)."""
    settings = settings or Settings()
    factory = engine_factory or load_engine

    async def startup(state: ServiceState) -> None:
        state.readiness.engine = "bark"
        state.readiness.model = settings.model
        # Metrics exist from the first scrape, not only once Bark is up.
        metrics = TtsMetrics(state.registry)
        limiter = WorkLimiter(settings.max_concurrent, settings.max_queue, name="bark generation")
        engine, details = await load_checked(
            factory, settings, what=f"Bark checkpoint {settings.model!r}"
        )
        service = BarkSpeaker(engine, settings, limiter, metrics)
        state.serve(Deps(settings, service), engine=engine.name, details=details)

    return create_app(NAME, settings, routers=[router], startup=startup)
