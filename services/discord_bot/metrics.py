"""The bot's own Prometheus metrics, registered on the app's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

TURN_BUCKETS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0)


class BotMetrics:
    """Utterances, their outcome, and latency from end of speech to the reply."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.utterances = Counter(
            "discord_utterances_total",
            "Utterances cut by the VAD, by what became of them.",
            ["outcome"],
            registry=registry,
        )
        self.turn_latency = Histogram(
            "discord_turn_latency_seconds",
            "From the end of an utterance (VAD) to the reply being ready to play or post.",
            buckets=TURN_BUCKETS,
            registry=registry,
        )
        self.utterance_seconds = Histogram(
            "discord_utterance_duration_seconds",
            "Length of the utterances sent to the orchestrator.",
            buckets=(0.5, 1, 2, 3, 5, 8, 12, 20, 30, 60),
            registry=registry,
        )
        self.orchestrator_attempts = Counter(
            "discord_orchestrator_attempts_total",
            "HTTP attempts made to the orchestrator (retries included).",
            registry=registry,
        )
        self.voice_connections = Gauge(
            "discord_voice_connections",
            "Voice channels the bot is listening in.",
            registry=registry,
        )
