"""The transcription pipeline shared by all routes: limits, decode, silence gate, queue, model."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from services.kit import ApiError
from services.kit.audio import decode_audio
from services.kit.concurrency import WorkLimiter
from services.kit.limits import check_size, check_text_length
from services.stt.engine import (
    SAMPLE_RATE,
    InvalidOptionError,
    SpeechToText,
    TranscribeOptions,
    Transcription,
)
from services.stt.metrics import SttMetrics
from services.stt.settings import Settings

log = logging.getLogger("stt.service")


@dataclass(frozen=True)
class Result:
    """A transcription and the time the model spent on it."""

    transcription: Transcription
    processing_ms: float


def peak_dbfs(samples: np.ndarray) -> float:
    """Peak level in dB relative to full scale (-inf for digital silence)."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


class Transcriber:
    """Turns uploaded audio bytes into a Transcription within the configured limits."""

    def __init__(
        self, engine: SpeechToText, settings: Settings, limiter: WorkLimiter, metrics: SttMetrics
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.limiter = limiter
        self.metrics = metrics

    def options(
        self,
        *,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float | None = None,
        word_timestamps: bool = False,
    ) -> TranscribeOptions:
        """Request options merged with the service defaults; bad values are a 400."""
        lang = (language or self.settings.language or "").strip().lower() or None
        if prompt:
            limit = self.settings.max_prompt_chars
            check_text_length(prompt, limit, "prompt", code="prompt_too_long")
        return TranscribeOptions(
            language=lang,
            prompt=prompt or None,
            temperature=temperature,
            word_timestamps=word_timestamps,
            beam_size=self.settings.beam_size,
            vad_filter=self.settings.vad_filter,
        )

    async def transcribe(self, data: bytes, options: TranscribeOptions) -> Result:
        """Check limits, decode, skip silence, and run the model in the bounded queue."""
        check_size(data, self.settings.max_upload_bytes)
        if options.language is not None and options.language not in self.engine.languages:
            raise ApiError(
                400,
                f"language {options.language!r} is not supported by this model",
                param="language",
                code="unsupported_language",
            )
        audio = await asyncio.to_thread(decode_audio, data, SAMPLE_RATE)
        if audio.duration_s > self.settings.max_duration_s:
            raise ApiError(
                413,
                f"audio is {audio.duration_s:.1f} s long; the limit is "
                f"{self.settings.max_duration_s:g} s",
                param="file",
                code="audio_too_long",
            )
        if peak_dbfs(audio.samples) < self.settings.silence_dbfs:
            # Whisper invents words ("Thank you.") for pure silence; silence means no words.
            self.metrics.observe(audio.duration_s, 0.0, "silence")
            empty = Transcription("", options.language, audio.duration_s, [])
            return Result(empty, 0.0)
        try:
            result = await self.limiter.run(self._timed, audio.samples, options)
        except ApiError as exc:
            if exc.status == 429:
                self.metrics.transcriptions.labels("rejected").inc()
            raise
        except InvalidOptionError as exc:
            raise ApiError(400, str(exc), param=exc.param, code="invalid_option") from exc
        except Exception:
            self.metrics.transcriptions.labels("error").inc()
            raise
        self.metrics.observe(audio.duration_s, result.processing_ms / 1000.0, "ok")
        log.info(
            "transcribed",
            extra={
                "audio_s": round(audio.duration_s, 3),
                "processing_ms": round(result.processing_ms, 1),
                "language": result.transcription.language,
                "segments": len(result.transcription.segments),
            },
        )
        return result

    def _timed(self, samples: np.ndarray, options: TranscribeOptions) -> Result:
        started = time.perf_counter()
        transcription = self.engine.transcribe(samples, options)
        return Result(transcription, (time.perf_counter() - started) * 1000.0)
