"""What the dashboard shows, as plain functions: health probes and Prometheus queries."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

# Metric names the mesh exports (services.kit.metrics, orchestrator, guardrails).
HTTP_REQUESTS = "http_requests_total"
HTTP_LATENCY = "http_request_duration_seconds"
STAGE_REQUESTS = "orchestrator_stage_requests_total"
STAGE_LATENCY = "orchestrator_stage_latency_seconds"
FALLBACKS = "orchestrator_fallbacks_total"
GUARD_BLOCKS = "guardrail_blocks_total"
# Probes and scrapes are not user traffic; counting them would make an idle mesh look busy.
NOT_PROBES = 'route!~"/health.*|/metrics"'


class PrometheusUnavailable(Exception):
    """Prometheus could not be reached or refused the query."""


@dataclass(frozen=True)
class Sample:
    """One instant-vector element."""

    labels: dict[str, str]
    value: float | None


@dataclass(frozen=True)
class Series:
    """One range-vector series: (unix time, value) points."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


def _number(raw: str) -> float | None:
    value = float(raw)
    return None if math.isnan(value) or math.isinf(value) else value


class PrometheusClient:
    """A small client for Prometheus's HTTP API (/api/v1/query, /query_range)."""

    def __init__(self, base_url: str, timeout_s: float = 3.0, http: httpx.Client | None = None):
        self.base_url = base_url.rstrip("/")
        self.http = http or httpx.Client(timeout=timeout_s)

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        try:
            r = self.http.get(self.base_url + path, params=params)
        except httpx.HTTPError as exc:
            raise PrometheusUnavailable(
                f"Prometheus at {self.base_url} is unreachable ({type(exc).__name__})"
            ) from exc
        try:
            body = r.json()
        except ValueError as exc:
            raise PrometheusUnavailable(
                f"Prometheus at {self.base_url} answered HTTP {r.status_code} without JSON"
            ) from exc
        if r.status_code >= 400 or body.get("status") != "success":
            raise PrometheusUnavailable(
                f"Prometheus refused the query: {body.get('error', r.status_code)}"
            )
        return body["data"]

    def query(self, promql: str) -> list[Sample]:
        """Evaluate an instant query."""
        data = self._get("/api/v1/query", {"query": promql})
        return [Sample(dict(r["metric"]), _number(r["value"][1])) for r in data.get("result", [])]

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[Series]:
        """Evaluate a range query."""
        data = self._get(
            "/api/v1/query_range", {"query": promql, "start": start, "end": end, "step": step}
        )
        out = []
        for r in data.get("result", []):
            points = [(float(t), v) for t, raw in r["values"] if (v := _number(raw)) is not None]
            out.append(Series(dict(r["metric"]), points))
        return out

    def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets with job, instance and health."""
        data = self._get("/api/v1/targets", {"state": "active"})
        return [
            {
                "job": t.get("labels", {}).get("job", ""),
                "instance": t.get("labels", {}).get("instance", ""),
                "health": t.get("health", ""),
                "error": t.get("lastError", ""),
            }
            for t in data.get("activeTargets", [])
        ]

    def close(self) -> None:
        """Release the connection pool."""
        self.http.close()


@dataclass
class ServiceHealth:
    """One row of the health grid."""

    name: str
    url: str
    live: bool
    ready: bool
    engine: str = ""
    model: str = ""
    detail: str = ""
    latency_ms: float | None = None


def _probe(http: httpx.Client, name: str, url: str) -> ServiceHealth:
    row = ServiceHealth(name, url, live=False, ready=False)
    started = time.perf_counter()
    try:
        live = http.get(url + "/health/live")
        row.live = live.status_code == 200
        ready = http.get(url + "/health/ready")
    except httpx.HTTPError as exc:
        row.detail = f"unreachable ({type(exc).__name__})"
        return row
    row.latency_ms = round((time.perf_counter() - started) * 1000, 1)
    row.ready = ready.status_code == 200
    try:
        body = ready.json()
    except ValueError:
        body = {}
    if isinstance(body, dict):
        row.engine = str(body.get("engine") or "")
        row.model = str(body.get("model") or "")
        if not row.ready:
            row.detail = str(body.get("reason") or f"HTTP {ready.status_code}")
    elif not row.ready:
        row.detail = f"HTTP {ready.status_code}"
    return row


def check_health(services: dict[str, str], timeout_s: float = 3.0) -> list[ServiceHealth]:
    """Probe every service's /health/live and /health/ready concurrently."""
    if not services:
        return []
    # One pooled client shared by the threads (httpx.Client is thread-safe): building a client
    # per probe costs more than the probe itself.
    with (
        httpx.Client(timeout=timeout_s) as http,
        ThreadPoolExecutor(max_workers=min(16, len(services))) as pool,
    ):
        futures = [pool.submit(_probe, http, n, u) for n, u in services.items()]
        return [f.result() for f in futures]


@dataclass
class Snapshot:
    """Everything the metric panels show, read in one pass."""

    targets: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    http_latency: list[dict[str, Any]] = field(default_factory=list)
    stage_latency: list[dict[str, Any]] = field(default_factory=list)
    stage_outcomes: list[dict[str, Any]] = field(default_factory=list)
    fallbacks: list[dict[str, Any]] = field(default_factory=list)
    blocks: list[dict[str, Any]] = field(default_factory=list)


def _by(samples: list[Sample], keys: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    return {
        tuple(s.labels.get(k, "") for k in keys): s.value for s in samples if s.value is not None
    }


def request_table(prom: PrometheusClient, window: str) -> list[dict[str, Any]]:
    """Per service: requests served, rate, 4xx and 5xx (probes excluded)."""
    keys = ("service",)
    total = _by(prom.query(f"sum by (service) ({HTTP_REQUESTS}{{{NOT_PROBES}}})"), keys)
    rate = _by(
        prom.query(f"sum by (service) (rate({HTTP_REQUESTS}{{{NOT_PROBES}}}[{window}]))"), keys
    )
    c4 = _by(prom.query(f'sum by (service) ({HTTP_REQUESTS}{{status=~"4..",{NOT_PROBES}}})'), keys)
    c5 = _by(prom.query(f'sum by (service) ({HTTP_REQUESTS}{{status=~"5..",{NOT_PROBES}}})'), keys)
    rows = []
    for key in sorted(total):
        rows.append(
            {
                "service": key[0],
                "requests": int(total[key]),
                "req/s": round(rate.get(key, 0.0), 3),
                "4xx": int(c4.get(key, 0.0)),
                "5xx": int(c5.get(key, 0.0)),
            }
        )
    return rows


def _quantiles(
    prom: PrometheusClient, metric: str, keys: tuple[str, ...], window: str, extra: str = ""
) -> list[dict[str, Any]]:
    by = ", ".join(("le", *keys))
    sel = f"{{{extra}}}" if extra else ""
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    for q, col in ((0.5, "p50_ms"), (0.95, "p95_ms")):
        expr = f"histogram_quantile({q}, sum by ({by}) (rate({metric}_bucket{sel}[{window}])))"
        for s in prom.query(expr):
            key = tuple(s.labels.get(k, "") for k in keys)
            row = found.setdefault(key, dict(zip(keys, key, strict=True)))
            row[col] = None if s.value is None else round(s.value * 1000, 1)
    # A quantile with no traffic in the window is NaN: show only rows with numbers.
    return [found[k] for k in sorted(found) if found[k].get("p50_ms") is not None]


def http_latency(prom: PrometheusClient, window: str) -> list[dict[str, Any]]:
    """p50/p95 request latency per service (probes excluded)."""
    return _quantiles(prom, HTTP_LATENCY, ("service",), window, NOT_PROBES)


def stage_latency(prom: PrometheusClient, window: str) -> list[dict[str, Any]]:
    """p50/p95 latency of successful stage calls per stage and provider."""
    return _quantiles(prom, STAGE_LATENCY, ("stage", "provider"), window, 'outcome="ok"')


def stage_outcomes(prom: PrometheusClient) -> list[dict[str, Any]]:
    """Stage calls by stage, provider and outcome."""
    samples = prom.query(f"sum by (stage, provider, outcome) ({STAGE_REQUESTS})")
    rows = [
        {
            **{k: s.labels.get(k, "") for k in ("stage", "provider", "outcome")},
            "count": int(s.value),
        }
        for s in samples
        if s.value is not None
    ]
    return sorted(rows, key=lambda r: (r["stage"], r["provider"], r["outcome"]))


def _counts_by(prom: PrometheusClient, query: str, label: str, name: str) -> list[dict[str, Any]]:
    """`sum by (label)` of a counter expression, as rows {label, name: count} sorted by label."""
    samples = prom.query(f"sum by ({label}) ({query})")
    rows = [
        {label: s.labels.get(label, ""), name: int(s.value)} for s in samples if s.value is not None
    ]
    return sorted(rows, key=lambda r: str(r[label]))


def fallback_counts(prom: PrometheusClient) -> list[dict[str, Any]]:
    """Turns a fallback provider served, per stage."""
    return _counts_by(prom, FALLBACKS, "stage", "fallbacks")


def guardrail_blocks(prom: PrometheusClient) -> list[dict[str, Any]]:
    """Guardrail blocks per reason."""
    return _counts_by(prom, GUARD_BLOCKS, "reason", "blocks")


def snapshot(prom: PrometheusClient, window: str) -> Snapshot:
    """Read every panel's numbers; raises PrometheusUnavailable on the first failure."""
    return Snapshot(
        targets=prom.targets(),
        requests=request_table(prom, window),
        http_latency=http_latency(prom, window),
        stage_latency=stage_latency(prom, window),
        stage_outcomes=stage_outcomes(prom),
        fallbacks=fallback_counts(prom),
        blocks=guardrail_blocks(prom),
    )


def timeseries(
    prom: PrometheusClient, promql: str, label: str, minutes: int, now: float | None = None
) -> dict[str, list[tuple[float, float]]]:
    """A range query over the last `minutes`, one series per value of `label`."""
    end = now or time.time()
    start = end - minutes * 60
    step = max(5.0, minutes * 60 / 240)  # ~240 points whatever the span
    return {
        s.labels.get(label, "") or promql: s.points
        for s in prom.query_range(promql, start, end, step)
    }


def request_rate_query(window: str) -> str:
    """PromQL: requests per second per service (probes excluded)."""
    return f"sum by (service) (rate({HTTP_REQUESTS}{{{NOT_PROBES}}}[{window}]))"


def stage_p95_query(window: str) -> str:
    """PromQL: p95 latency in seconds of successful stage calls, per stage."""
    buckets = f'{STAGE_LATENCY}_bucket{{outcome="ok"}}'
    return f"histogram_quantile(0.95, sum by (le, stage) (rate({buckets}[{window}])))"
