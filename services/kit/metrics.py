"""Per-app Prometheus registry: the HTTP metrics every service exposes, and `MetricSet`, the
one way a service declares its own metrics on that registry."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from services.kit.concurrency import WorkLimiter

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


class MetricSet:
    """Base of a service's metrics class: builds counters, gauges and histograms on its registry.

    `registry=None` builds metrics registered nowhere (a test's throwaway instance).
    """

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.registry = registry

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        """A counter on this set's registry."""
        return Counter(name, doc, labels, registry=self.registry)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        """A gauge on this set's registry."""
        return Gauge(name, doc, labels, registry=self.registry)

    def histogram(
        self,
        name: str,
        doc: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        """A histogram on this set's registry (latency buckets unless told otherwise)."""
        return Histogram(name, doc, labels, buckets=buckets, registry=self.registry)

    def watch_limiter(self, limiter: WorkLimiter, prefix: str, what: str) -> None:
        """`<prefix>_queue_depth` and `<prefix>_running` gauges read from a WorkLimiter."""
        waiting = self.gauge(f"{prefix}_queue_depth", f"{what} waiting for a slot.")
        waiting.set_function(lambda: limiter.waiting)
        running = self.gauge(f"{prefix}_running", f"{what} running now.")
        running.set_function(lambda: limiter.running)


class HttpMetrics(MetricSet):
    """Request count and latency by route, method and status."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        super().__init__(registry)
        self.service = service
        labels = ["service", "route", "method", "status"]
        self.requests = self.counter("http_requests_total", "HTTP requests served.", labels)
        self.latency = self.histogram(
            "http_request_duration_seconds",
            "HTTP request latency until the response completes.",
            labels,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        labels = (self.service, route, method, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """Prometheus text exposition of a registry."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
