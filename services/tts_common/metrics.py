"""Prometheus metrics both TTS services record, on the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class TtsMetrics:
    """Synthesis time, time to first chunk, audio produced and characters spoken, by engine."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.synthesis_seconds = Histogram(
            "tts_synthesis_seconds",
            "Wall time to synthesise one request.",
            ["engine"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=registry,
        )
        self.first_chunk_seconds = Histogram(
            "tts_first_chunk_seconds",
            "Time until the first audio chunk was ready.",
            ["engine"],
            buckets=(0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.audio_seconds = Counter(
            "tts_audio_seconds",
            "Seconds of audio produced.",
            ["engine"],
            registry=registry,
        )
        self.characters = Counter(
            "tts_characters",
            "Characters of input text synthesised.",
            ["engine"],
            registry=registry,
        )
