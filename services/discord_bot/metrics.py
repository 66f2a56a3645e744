"""The bot's own Prometheus metrics, registered on the app's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.kit.metrics import MetricSet

TURN_BUCKETS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0)
_UTTERANCE_BUCKETS = (0.5, 1, 2, 3, 5, 8, 12, 20, 30, 60)


class BotMetrics(MetricSet):
    """Utterances, their outcome, and latency from end of speech to the reply."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self.utterances = self.counter(
            "discord_utterances_total",
            "Utterances cut by the VAD, by what became of them.",
            ["outcome"],
        )
        self.turn_latency = self.histogram(
            "discord_turn_latency_seconds",
            "From the end of an utterance (VAD) to the reply being ready to play or post.",
            buckets=TURN_BUCKETS,
        )
        self.utterance_seconds = self.histogram(
            "discord_utterance_duration_seconds",
            "Length of the utterances sent to the orchestrator.",
            buckets=_UTTERANCE_BUCKETS,
        )
        self.orchestrator_attempts = self.counter(
            "discord_orchestrator_attempts_total",
            "HTTP attempts made to the orchestrator (retries included).",
        )
        self.voice_connections = self.gauge(
            "discord_voice_connections", "Voice channels the bot is listening in."
        )
