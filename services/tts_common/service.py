"""The layer between a TTS service's routes and its engine: limits, voices, queue, metrics."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any, Generic, TypeVar

import numpy as np
from fastapi import Response

from services.kit.concurrency import WorkLimiter
from services.kit.limits import check_text_length
from services.tts_common.engine import SpeechEngine
from services.tts_common.metrics import TtsMetrics
from services.tts_common.streaming import audio_response, chunks_in_thread
from services.tts_common.voices import resolve_voice

# Covariant: a Speaker of Piper voices is a Speaker of some speech engine (the routes' view).
E_co = TypeVar("E_co", bound=SpeechEngine, covariant=True)


class Speaker(Generic[E_co]):
    """Speaks text with one engine within the configured limits (Piper's streaming default)."""

    def __init__(
        self,
        engine: E_co,
        *,
        voice_map: Mapping[str, str],
        limiter: WorkLimiter,
        metrics: TtsMetrics,
        max_chars: int,
    ) -> None:
        self.engine = engine
        self.voice_map = dict(voice_map)
        self.limiter = limiter
        self.metrics = metrics
        self.max_chars = max_chars

    def check_length(self, text: str, param: str) -> None:
        """400 `input_too_long` beyond the longest text the service accepts."""
        check_text_length(text, self.max_chars, param, code="input_too_long")

    def voice(self, requested: str) -> str:
        """The local voice for a requested (local or OpenAI) name; 400 if unknown."""
        return resolve_voice(requested, self.engine.voices(), self.voice_map)

    def chunks(self, text: str, voice: str, speed: float) -> AsyncGenerator[np.ndarray, None]:
        """The engine's chunks for `text`, made in worker threads under one queue slot."""
        engine = self.engine
        return chunks_in_thread(self.limiter, lambda: engine.synthesize(text, voice, speed))

    async def speak(
        self, text: str, voice: str, speed: float, fmt: str, *, param: str, stream: bool = True
    ) -> Response:
        """The audio response for one request; wav/pcm stream sentence by sentence."""
        self.check_length(text, param)
        local = self.voice(voice)
        return await self.respond(self.chunks(text, local, speed), text, local, fmt, stream=stream)

    async def respond(
        self,
        chunks: AsyncGenerator[np.ndarray, None],
        text: str,
        voice: str,
        fmt: str,
        *,
        stream: bool,
        started: float | None = None,
    ) -> Response:
        """The audio response for `chunks` of `text` spoken by `voice`, metrics recorded."""
        return await audio_response(
            chunks,
            self.engine.sample_rate(voice),
            fmt,
            engine=self.engine.name,
            metrics=self.metrics,
            characters=len(text),
            headers={"X-TTS-Voice": voice},
            stream=stream,
            started=started,
        )

    def voices_info(self) -> dict[str, Any]:
        """`GET /voices`: local voices, the default, and what each OpenAI name maps to."""
        names = self.engine.voices()
        return {
            "engine": self.engine.name,
            "default": names[0],
            "voices": [{"name": n, "sample_rate": self.engine.sample_rate(n)} for n in names],
            "openai_voices": dict(self.voice_map),
        }
