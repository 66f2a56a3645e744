"""tts-bark's own metrics: fallbacks by reason and fallbacks that failed too."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.kit.metrics import MetricSet

# Why a request went to Piper instead of Bark.
FALLBACK_REASONS = ("not_loaded", "too_long", "speed", "busy", "timeout", "error")


class FallbackMetrics(MetricSet):
    """`tts_fallback_total{reason}` and `tts_fallback_failures_total{reason}`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.fallback = self.counter(
            "tts_fallback", "Requests answered by the Piper fallback, by reason.", ["reason"]
        )
        self.failures = self.counter(
            "tts_fallback_failures", "Fallback calls that failed as well, by reason.", ["reason"]
        )
        for reason in FALLBACK_REASONS:
            self.fallback.labels(reason)
            self.failures.labels(reason)
