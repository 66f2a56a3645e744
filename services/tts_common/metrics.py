"""Prometheus metrics both TTS services record, on the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.kit.metrics import MetricSet

_SYNTHESIS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_FIRST_CHUNK_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 5, 10, 30)


class TtsMetrics(MetricSet):
    """Synthesis time, time to first chunk, audio produced and characters spoken, by engine."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        engine = ["engine"]
        self.synthesis_seconds = self.histogram(
            "tts_synthesis_seconds",
            "Wall time to synthesise one request.",
            engine,
            _SYNTHESIS_BUCKETS,
        )
        self.first_chunk_seconds = self.histogram(
            "tts_first_chunk_seconds",
            "Time until the first audio chunk was ready.",
            engine,
            _FIRST_CHUNK_BUCKETS,
        )
        self.audio_seconds = self.counter("tts_audio_seconds", "Seconds of audio produced.", engine)
        self.characters = self.counter(
            "tts_characters", "Characters of input text synthesised.", engine
        )
