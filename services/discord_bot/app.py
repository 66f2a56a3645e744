"""App factory: health/metrics endpoints around the Discord bot's lifetime."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from fastapi import FastAPI

from services.client import OrchestratorClient, RetryPolicy
from services.client.live import LiveSession, live_session
from services.discord_bot.handler import UtteranceHandler
from services.discord_bot.live import LiveConfig
from services.discord_bot.metrics import BotMetrics
from services.discord_bot.segmenter import UtteranceSegmenter
from services.discord_bot.sessions import SessionIds
from services.discord_bot.settings import Settings
from services.kit import ServiceState, create_app

log = logging.getLogger("discord_bot.app")


class BotRunner(Protocol):
    """What the service needs from a chat bot; tests give a fake, production discord.py."""

    async def login(self, token: str) -> None:
        """Authenticate (a bad token raises)."""
        ...

    async def connect(self) -> None:
        """Serve until closed."""
        ...

    async def close(self) -> None:
        """Leave voice channels and disconnect."""
        ...


# Builds the bot; tests replace it to run the service without Discord.
BotFactory = Callable[[Settings, UtteranceHandler, BotMetrics, ServiceState], BotRunner]


def segmenter_factory(settings: Settings) -> Callable[[], UtteranceSegmenter]:
    """One Silero-backed segmenter per speaker, configured from settings."""
    from services.discord_bot.vad import SileroDetector

    def make() -> UtteranceSegmenter:
        return UtteranceSegmenter(
            SileroDetector(),
            threshold=settings.vad_threshold,
            silence_ms=settings.silence_ms,
            min_speech_ms=settings.min_utterance_ms,
            max_utterance_s=settings.max_utterance_s,
        )

    return make


def make_handler(settings: Settings, metrics: BotMetrics) -> UtteranceHandler:
    """The utterance handler with an orchestrator client built from settings."""
    key = settings.orchestrator_api_key
    client = OrchestratorClient(
        settings.orchestrator_url,
        api_key=key.get_secret_value() if key else None,
        timeout_s=settings.request_timeout_s,
        retry=RetryPolicy(max_attempts=settings.retry_attempts, base_delay_s=settings.retry_base_s),
    )
    secret = settings.session_secret
    return UtteranceHandler(
        client,
        sessions=SessionIds(secret.get_secret_value().encode() if secret else None),
        pipeline=settings.pipeline,
        wake_phrase=settings.wake_phrase,
        wake_pipeline=settings.wake_pipeline,
        always_post_text=settings.always_post_text,
        metrics=metrics,
    )


def live_config(settings: Settings, metrics: BotMetrics) -> LiveConfig:
    """Live mode: each speaker's session on the orchestrator's WS /v1/realtime."""
    key = settings.orchestrator_api_key
    api_key = key.get_secret_value() if key else None

    def opener(session_id: str) -> AbstractAsyncContextManager[LiveSession]:
        return live_session(
            settings.orchestrator_url,
            api_key=api_key,
            pipeline=settings.pipeline or "voice",
            session_id=session_id,
        )

    return LiveConfig(
        opener,
        metrics=metrics,
        always_post_text=settings.always_post_text,
        silence_pad_s=settings.live_silence_pad_ms / 1000,
        reconnect_s=settings.retry_base_s,
    )


def _discord_bot(
    settings: Settings, handler: UtteranceHandler, metrics: BotMetrics, state: ServiceState
) -> BotRunner:
    from services.discord_bot.discord_adapter import build_bot

    live = live_config(settings, metrics) if settings.live else None
    return build_bot(settings, handler, metrics, state.readiness, segmenter_factory(settings), live)


def _gateway_ended(task: asyncio.Task[None], state: ServiceState) -> None:
    # The gateway loop only returns for good on close or a fatal error (e.g. an intent the
    # portal does not grant): readiness must say so rather than stay green.
    state.readiness.ready = False
    if task.cancelled():
        state.readiness.reason = "stopped"
        return
    exc = task.exception()
    state.readiness.reason = (
        f"Discord connection ended: {type(exc).__name__}: {exc}" if exc else "stopped"
    )
    if exc is not None:
        log.error("Discord connection ended", extra={"error": type(exc).__name__})


@dataclass
class _Running:
    """What startup started and shutdown stops (each may be missing if startup failed)."""

    handler: UtteranceHandler | None = None
    bot: BotRunner | None = None
    task: asyncio.Task[None] | None = None

    async def close(self) -> None:
        """Leave Discord, stop the gateway task and close the orchestrator client."""
        if self.bot is not None:
            await self.bot.close()
        if self.task is not None:
            self.task.cancel()
        if self.handler is not None:
            await self.handler.client.aclose()


def build_app(settings: Settings | None = None, bot_factory: BotFactory | None = None) -> FastAPI:
    """The bot service: /health/* reflects the Discord connection, /metrics the turns."""
    settings = settings or Settings()  # type: ignore[call-arg]  # token comes from the env
    factory = bot_factory or _discord_bot

    running = _Running()

    async def startup(state: ServiceState) -> None:
        metrics = BotMetrics(state.registry)
        running.handler = make_handler(settings, metrics)
        # Load the VAD model once now (off the loop) so the first utterance does not pay for it.
        await asyncio.to_thread(lambda: segmenter_factory(settings)())
        bot = running.bot = factory(settings, running.handler, metrics, state)
        state.readiness.engine = "discord.py"
        state.readiness.model = "silero-vad"
        state.readiness.reason = "connecting to Discord"
        # start() logs in and then serves the gateway forever, reconnecting on its own; a bad
        # token raises here and readiness reports "startup failed: LoginFailure ...".
        await bot.login(settings.bot_token.get_secret_value())
        task = running.task = asyncio.create_task(bot.connect(), name="discord-gateway")
        task.add_done_callback(lambda t: _gateway_ended(t, state))

    async def shutdown(state: ServiceState) -> None:
        await running.close()

    return create_app("discord", settings, startup=startup, shutdown=shutdown)
