"""Guardrail metrics, registered on the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class GuardMetrics:
    """Blocks by reason, check latency by check, redactions by PII type, escalations."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.blocks = Counter(
            "guardrail_blocks", "Texts judged unsafe, by reason.", ["reason"], registry=registry
        )
        self.latency = Histogram(
            "guardrail_latency_seconds",
            "Time spent in each guardrail check.",
            ["check"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.redactions = Counter(
            "guardrail_redactions", "PII values redacted, by type.", ["type"], registry=registry
        )
        self.escalations = Counter(
            "guardrail_escalations", "Escalations recorded.", registry=registry
        )
