"""Guardrail metrics, registered on the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.kit.metrics import MetricSet

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class GuardMetrics(MetricSet):
    """Blocks by reason, check latency by check, redactions by PII type, escalations."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.blocks = self.counter(
            "guardrail_blocks", "Texts judged unsafe, by reason.", ["reason"]
        )
        self.latency = self.histogram(
            "guardrail_latency_seconds", "Time spent in each guardrail check.", ["check"], _BUCKETS
        )
        self.redactions = self.counter(
            "guardrail_redactions", "PII values redacted, by type.", ["type"]
        )
        self.escalations = self.counter("guardrail_escalations", "Escalations recorded.")
