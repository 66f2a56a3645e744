"""The stt service's own Prometheus metrics, on the app's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.kit.concurrency import WorkLimiter
from services.kit.metrics import MetricSet

_PROCESSING_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0)
_RTF_BUCKETS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)


class SttMetrics(MetricSet):
    """Audio seconds in, processing time, real-time factor, queue depth and outcomes."""

    def __init__(self, registry: CollectorRegistry, limiter: WorkLimiter) -> None:
        super().__init__(registry)
        self.audio_seconds = self.counter(
            "stt_audio_seconds_total", "Seconds of audio transcribed."
        )
        self.processing = self.histogram(
            "stt_processing_seconds",
            "Time spent transcribing one request (model only, queue wait excluded).",
            buckets=_PROCESSING_BUCKETS,
        )
        self.rtf = self.histogram(
            "stt_realtime_factor_ratio",
            "Processing time divided by audio duration, per request.",
            buckets=_RTF_BUCKETS,
        )
        self.transcriptions = self.counter(
            "stt_transcriptions_total", "Transcription requests by outcome.", ["outcome"]
        )
        self.watch_limiter(limiter, "stt", "Transcriptions")

    def observe(self, audio_s: float, processing_s: float, outcome: str) -> None:
        """Record one finished transcription."""
        self.transcriptions.labels(outcome).inc()
        self.audio_seconds.inc(audio_s)
        self.processing.observe(processing_s)
        if audio_s > 0:
            self.rtf.observe(processing_s / audio_s)
