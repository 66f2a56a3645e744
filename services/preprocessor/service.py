"""The layer between routes and engine: input limits, the work queue, metrics, stream slots."""

from __future__ import annotations

import time

import numpy as np

from services.kit import ApiError
from services.kit.concurrency import WorkLimiter
from services.preprocessor.engine import DenoiseEngine, FixedLatencyStream, denoise_clip
from services.preprocessor.metrics import DenoiseMetrics
from services.preprocessor.settings import Settings


class Denoiser:
    """Runs the loaded engine for the HTTP and WebSocket routes within the configured limits."""

    def __init__(
        self,
        engine: DenoiseEngine,
        settings: Settings,
        limiter: WorkLimiter,
        metrics: DenoiseMetrics,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.limiter = limiter
        self.metrics = metrics
        self.streams = 0  # open WebSocket streams

    def check_rate(self, rate: int, param: str) -> None:
        """400 unless the sample rate lies within the configured bounds."""
        s = self.settings
        if not s.min_sample_rate <= rate <= s.max_sample_rate:
            raise ApiError(
                400,
                f"sample rate {rate} Hz is not supported: use {s.min_sample_rate}"
                f"-{s.max_sample_rate} Hz",
                param=param,
                code="unsupported_sample_rate",
            )

    def check_duration(self, n_samples: int, rate: int, param: str) -> None:
        """413 when the clip is longer than the configured limit."""
        seconds = n_samples / rate
        if seconds > self.settings.max_duration_s:
            raise ApiError(
                413,
                f"audio is {seconds:.1f} s long; the limit is {self.settings.max_duration_s:g} s",
                param=param,
                code="audio_too_long",
            )

    def headers(self, rate: int) -> dict[str, str]:
        """Response headers naming the engine and the audio's rate."""
        return {"X-Denoise-Engine": self.engine.name, "X-Sample-Rate": str(rate)}

    async def denoise(self, samples: np.ndarray, rate: int, endpoint: str) -> np.ndarray:
        """Denoise a whole clip in the work queue; same length and timing back."""
        started = time.perf_counter()
        out = await self.limiter.run(denoise_clip, self.engine, samples, rate)
        self.metrics.observe(
            self.engine.name, endpoint, len(samples) / rate, time.perf_counter() - started
        )
        return out

    def take_stream(self, rate: int) -> None:
        """Count one more WebSocket stream; 400/429 when it cannot stream or too many are open."""
        self.check_rate(rate, "sample_rate")
        if not self.engine.realtime:
            raise ApiError(
                400,
                f"engine {self.engine.name} cannot stream; use POST /denoise",
                code="streaming_unsupported",
            )
        if self.streams >= self.settings.max_streams:
            raise ApiError(
                429, f"too many streams (max {self.settings.max_streams})", code="too_many_streams"
            )
        # Counted before the caller's first await, so concurrent connects cannot overshoot.
        self.streams += 1
        self.metrics.active_streams.labels(self.engine.name).inc()

    def drop_stream(self) -> None:
        """Give back a slot taken with `take_stream`."""
        self.streams -= 1
        self.metrics.active_streams.labels(self.engine.name).dec()

    async def open_stream(self, rate: int) -> FixedLatencyStream:
        """A fixed-latency stream with fresh engine state (made in the work queue)."""
        return await self.limiter.run(
            FixedLatencyStream, self.engine, rate, self.settings.stream_margin_ms
        )

    async def process(self, stream: FixedLatencyStream, block: np.ndarray, rate: int) -> np.ndarray:
        """Denoise one WebSocket block; a block of the same length back."""
        started = time.perf_counter()
        before = stream.underflows
        out = await self.limiter.run(stream.process, block)
        name = self.engine.name
        self.metrics.observe(name, "denoise_ws", len(block) / rate, time.perf_counter() - started)
        if stream.underflows > before:
            self.metrics.stream_underflows.labels(name).inc()
        return out

    async def flush(self, stream: FixedLatencyStream) -> np.ndarray:
        """End an utterance: the stream's delayed tail."""
        return await self.limiter.run(stream.flush)
