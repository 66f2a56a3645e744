"""Service metrics of the audio-preprocessor, on the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.kit.metrics import MetricSet

_PROCESSING_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class DenoiseMetrics(MetricSet):
    """Audio processed, processing time and open streams, by engine."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        by_endpoint = ["engine", "endpoint"]
        self.audio_seconds = self.counter(
            "denoise_audio_seconds_total", "Seconds of audio denoised.", by_endpoint
        )
        self.processing_seconds = self.histogram(
            "denoise_processing_seconds",
            "Wall time spent denoising one request or block.",
            by_endpoint,
            _PROCESSING_BUCKETS,
        )
        self.active_streams = self.gauge(
            "denoise_active_streams", "Open WebSocket denoising streams.", ["engine"]
        )
        self.stream_underflows = self.counter(
            "denoise_stream_underflows_total",
            "WebSocket blocks padded because the engine lagged beyond the announced latency.",
            ["engine"],
        )

    def observe(self, engine: str, endpoint: str, audio_s: float, wall_s: float) -> None:
        """Record one processed piece of audio."""
        self.audio_seconds.labels(engine, endpoint).inc(audio_s)
        self.processing_seconds.labels(engine, endpoint).observe(wall_s)
