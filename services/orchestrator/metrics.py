"""Orchestrator metrics, registered on the app's own registry."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry

from services.kit.metrics import MetricSet


class OrchestratorMetrics(MetricSet):
    """Per-attempt stage outcomes, fallbacks, open circuits, runs and reloads."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        labels = ["pipeline", "stage", "provider", "outcome"]
        self.stage_requests = self.counter(
            "orchestrator_stage_requests_total",
            "Calls to stage providers by outcome (ok, transient_error, rejected, circuit_open, "
            "resent, cancelled).",
            labels,
        )
        self.stage_latency = self.histogram(
            "orchestrator_stage_latency_seconds",
            "Latency of each call to a stage provider.",
            labels,
        )
        self.fallbacks = self.counter(
            "orchestrator_fallbacks_total",
            "Times a stage moved on from this provider to the next one.",
            ["pipeline", "stage", "provider"],
        )
        self.circuit_open = self.gauge(
            "orchestrator_circuit_open",
            "1 while the provider's circuit is open (it is skipped).",
            ["provider"],
        )
        self.runs = self.counter(
            "orchestrator_pipeline_runs_total",
            "Pipeline runs by outcome (ok, blocked, error).",
            ["pipeline", "outcome"],
        )
        self.run_latency = self.histogram(
            "orchestrator_pipeline_latency_seconds",
            "End-to-end latency of a pipeline run.",
            ["pipeline"],
        )
        self.tool_calls = self.counter(
            "orchestrator_tool_calls_total",
            "Built-in tools run for the LLM, by outcome (ok, error: the model got an error text).",
            ["tool", "outcome"],
        )
        self.reloads = self.counter(
            "orchestrator_config_reloads_total",
            "Config loads by outcome (ok, rejected).",
            ["outcome"],
        )
        self.config_version = self.gauge(
            "orchestrator_config_version", "Version number of the config in use."
        )
        self.realtime_sessions = self.gauge(
            "orchestrator_realtime_sessions_active", "Live /v1/realtime sessions open now."
        )
        self.realtime_first_audio = self.histogram(
            "orchestrator_realtime_first_audio_seconds",
            "From the end of the user's speech (speech_stopped) to the first reply audio delta.",
        )
        self.realtime_interruptions = self.counter(
            "orchestrator_realtime_interruptions_total",
            "Replies cut by the user speaking over them (barge-in).",
        )
        self.realtime_responses = self.counter(
            "orchestrator_realtime_responses_total",
            "Realtime responses by final status (completed, cancelled, incomplete, failed).",
            ["status"],
        )

    def record_attempt(
        self, pipeline: str, stage: str, provider: str, outcome: str, seconds: float | None
    ) -> None:
        """Count one provider call (latency only for calls really made)."""
        self.stage_requests.labels(pipeline, stage, provider, outcome).inc()
        if seconds is not None:
            self.stage_latency.labels(pipeline, stage, provider, outcome).observe(seconds)


class ReplicaMetrics(MetricSet):
    """Per-address view of balanced providers: replicas found, calls, in flight, open circuits."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        address = ["host", "address"]
        self.replicas = self.gauge(
            "orchestrator_replicas",
            "Addresses the provider host resolved to at the last look-up.",
            ["host"],
        )
        self.requests = self.counter(
            "orchestrator_replica_requests_total",
            "Calls to one replica by outcome (ok, failed, busy, abandoned).",
            [*address, "outcome"],
        )
        self.outstanding = self.gauge(
            "orchestrator_replica_outstanding", "Calls in flight to one replica.", address
        )
        self.circuit_open = self.gauge(
            "orchestrator_replica_circuit_open",
            "1 while the replica's circuit is open (its siblings take its calls).",
            address,
        )

    def forget(self, host: str, address: str) -> None:
        """Drop the series of a replica that left (addresses are not reused meaningfully)."""
        for gauge in (self.outstanding, self.circuit_open):
            with contextlib.suppress(KeyError):
                gauge.remove(host, address)
        for outcome in ("ok", "failed", "busy", "abandoned"):
            with contextlib.suppress(KeyError):
                self.requests.remove(host, address, outcome)
