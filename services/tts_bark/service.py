"""tts-bark's layer between routes and Bark: the shared Speaker, with Bark's own limits.

Bark refuses what it cannot do instead of handing it to another engine: the pipeline's
fallback chain (config/pipelines.yaml) names the next TTS provider, so the orchestrator's
breaker, stage records and metrics see every refusal. Refusals are transient statuses (the
orchestrator moves on): 503 while loading (the kit) or for text Bark cannot speak (too long,
speed != 1), 429 when the queue is full, 504 past BARK_TIMEOUT_S, 500 when Bark raises.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

import numpy as np
from fastapi import Response

from services.kit import ApiError
from services.kit.concurrency import WorkLimiter
from services.tts_bark.engine import DEFAULT_VOICE, BarkSpeech
from services.tts_bark.settings import Settings
from services.tts_common.metrics import TtsMetrics
from services.tts_common.service import Speaker
from services.tts_common.voices import OPENAI_VOICES

log = logging.getLogger("tts_bark.service")


async def _once(audio: np.ndarray) -> AsyncGenerator[np.ndarray, None]:
    yield audio


class BarkSpeaker(Speaker[BarkSpeech]):
    """Speaks with Bark: whole answers within BARK_TIMEOUT_S, refusals the pipeline can route."""

    def __init__(
        self, engine: BarkSpeech, settings: Settings, limiter: WorkLimiter, metrics: TtsMetrics
    ) -> None:
        local = engine.voices()
        # Every OpenAI name speaks with the default preset unless BARK_VOICE_MAP names one.
        voice_map = {name: DEFAULT_VOICE for name in OPENAI_VOICES}
        voice_map.update({k: v for k, v in settings.voice_map.items() if v in local})
        super().__init__(
            engine,
            voice_map=voice_map,
            limiter=limiter,
            metrics=metrics,
            max_chars=settings.max_input_chars,
        )
        self.settings = settings

    def check_bark_can(self, text: str, speed: float, param: str) -> None:
        """503 for a valid request Bark cannot speak, so the next TTS provider takes it."""
        if len(text) > self.settings.max_chars:
            raise ApiError(
                503,
                f"{param} is {len(text)} characters; Bark speaks at most "
                f"{self.settings.max_chars} (BARK_MAX_CHARS): use another TTS provider",
                param=param,
                code="too_long_for_bark",
            )
        if speed != 1.0:
            raise ApiError(
                503,
                f"Bark cannot change the speaking rate (speed={speed:g}): use another TTS provider",
                param="speed",
                code="unsupported_speed",
            )

    async def speak(
        self, text: str, voice: str, speed: float, fmt: str, *, param: str, stream: bool = True
    ) -> Response:
        """Bark's whole answer, encoded in `fmt` (never streamed: a timeout must stay clean)."""
        self.check_length(text, param)
        local = self.voice(voice)
        self.check_bark_can(text, speed, param)
        started = time.perf_counter()
        try:
            audio = await asyncio.wait_for(self._generate(text, local), self.settings.timeout_s)
        except TimeoutError as exc:
            raise ApiError(
                504,
                f"Bark did not finish within BARK_TIMEOUT_S={self.settings.timeout_s:g} s",
                code="synthesis_timeout",
            ) from exc
        except ApiError:
            raise  # 429 queue_full from the limiter
        except Exception as exc:
            # Logged with the type only: the text is the user's.
            log.error("Bark generation failed", extra={"error": type(exc).__name__}, exc_info=True)
            raise ApiError(
                500, f"Bark generation failed ({type(exc).__name__})", code="synthesis_failed"
            ) from exc
        return await self.respond(_once(audio), text, local, fmt, stream=False, started=started)

    async def _generate(self, text: str, voice: str) -> np.ndarray:
        """Run Bark in a thread under the limiter; the slot stays taken until the thread ends."""
        limiter = self.limiter
        engine = self.engine
        await limiter.acquire()
        loop = asyncio.get_running_loop()
        try:
            fut: asyncio.Future[np.ndarray] = loop.run_in_executor(
                None, lambda: np.concatenate(list(engine.synthesize(text, voice, 1.0)))
            )
        except BaseException:
            limiter.release()
            raise

        def _done(f: asyncio.Future[np.ndarray]) -> None:
            # A timed-out generation keeps running (threads cannot be killed): it keeps its slot.
            limiter.release()
            if not f.cancelled():
                f.exception()  # retrieved so a late failure is not reported as "never retrieved"

        fut.add_done_callback(_done)
        return await asyncio.shield(fut)

    def voices_info(self) -> dict[str, Any]:
        """`GET /voices`: Bark's voices and presets and what OpenAI names map to."""
        return {**super().voices_info(), "default_preset": self.engine.default_preset}
