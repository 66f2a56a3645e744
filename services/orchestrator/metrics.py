"""Orchestrator metrics, registered on the app's own registry."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.kit.metrics import LATENCY_BUCKETS


class OrchestratorMetrics:
    """Per-attempt stage outcomes, fallbacks, open circuits, runs and reloads."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["pipeline", "stage", "provider", "outcome"]
        self.stage_requests = Counter(
            "orchestrator_stage_requests_total",
            "Calls to stage providers by outcome (ok, transient_error, rejected, circuit_open, "
            "resent).",
            labels,
            registry=registry,
        )
        self.stage_latency = Histogram(
            "orchestrator_stage_latency_seconds",
            "Latency of each call to a stage provider.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.fallbacks = Counter(
            "orchestrator_fallbacks_total",
            "Times a stage moved on from this provider to the next one.",
            ["pipeline", "stage", "provider"],
            registry=registry,
        )
        self.circuit_open = Gauge(
            "orchestrator_circuit_open",
            "1 while the provider's circuit is open (it is skipped).",
            ["provider"],
            registry=registry,
        )
        self.runs = Counter(
            "orchestrator_pipeline_runs_total",
            "Pipeline runs by outcome (ok, blocked, error).",
            ["pipeline", "outcome"],
            registry=registry,
        )
        self.run_latency = Histogram(
            "orchestrator_pipeline_latency_seconds",
            "End-to-end latency of a pipeline run.",
            ["pipeline"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.tool_calls = Counter(
            "orchestrator_tool_calls_total",
            "Built-in tools run for the LLM, by outcome (ok, error: the model got an error text).",
            ["tool", "outcome"],
            registry=registry,
        )
        self.reloads = Counter(
            "orchestrator_config_reloads_total",
            "Config loads by outcome (ok, rejected).",
            ["outcome"],
            registry=registry,
        )
        self.config_version = Gauge(
            "orchestrator_config_version",
            "Version number of the config in use.",
            registry=registry,
        )
        self.realtime_sessions = Gauge(
            "orchestrator_realtime_sessions_active",
            "Live /v1/realtime sessions open now.",
            registry=registry,
        )
        self.realtime_first_audio = Histogram(
            "orchestrator_realtime_first_audio_seconds",
            "From the end of the user's speech (speech_stopped) to the first reply audio delta.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.realtime_interruptions = Counter(
            "orchestrator_realtime_interruptions_total",
            "Replies cut by the user speaking over them (barge-in).",
            registry=registry,
        )
        self.realtime_responses = Counter(
            "orchestrator_realtime_responses_total",
            "Realtime responses by final status (completed, cancelled, incomplete, failed).",
            ["status"],
            registry=registry,
        )

    def record_attempt(
        self, pipeline: str, stage: str, provider: str, outcome: str, seconds: float | None
    ) -> None:
        """Count one provider call (latency only for calls really made)."""
        self.stage_requests.labels(pipeline, stage, provider, outcome).inc()
        if seconds is not None:
            self.stage_latency.labels(pipeline, stage, provider, outcome).observe(seconds)


class ReplicaMetrics:
    """Per-address view of balanced providers: replicas found, calls, in flight, open circuits."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.replicas = Gauge(
            "orchestrator_replicas",
            "Addresses the provider host resolved to at the last look-up.",
            ["host"],
            registry=registry,
        )
        self.requests = Counter(
            "orchestrator_replica_requests_total",
            "Calls to one replica by outcome (ok, failed, busy, abandoned).",
            ["host", "address", "outcome"],
            registry=registry,
        )
        self.outstanding = Gauge(
            "orchestrator_replica_outstanding",
            "Calls in flight to one replica.",
            ["host", "address"],
            registry=registry,
        )
        self.circuit_open = Gauge(
            "orchestrator_replica_circuit_open",
            "1 while the replica's circuit is open (its siblings take its calls).",
            ["host", "address"],
            registry=registry,
        )

    def forget(self, host: str, address: str) -> None:
        """Drop the series of a replica that left (addresses are not reused meaningfully)."""
        for gauge in (self.outstanding, self.circuit_open):
            with contextlib.suppress(KeyError):
                gauge.remove(host, address)
        for outcome in ("ok", "failed", "busy", "abandoned"):
            with contextlib.suppress(KeyError):
                self.requests.remove(host, address, outcome)
