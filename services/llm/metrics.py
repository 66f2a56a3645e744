"""Prometheus metrics of the LLM service, registered on the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_GEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class LlmMetrics:
    """Token counts, time to first token and generation time, labelled by model."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.tokens_generated = Counter(
            "llm_tokens_generated_total",
            "Completion tokens generated.",
            ["model"],
            registry=registry,
        )
        self.prompt_tokens = Counter(
            "llm_prompt_tokens_total",
            "Prompt tokens processed.",
            ["model"],
            registry=registry,
        )
        self.ttft = Histogram(
            "llm_time_to_first_token_seconds",
            "Time from start of generation to first token.",
            ["model"],
            buckets=_TTFT_BUCKETS,
            registry=registry,
        )
        self.generation = Histogram(
            "llm_generation_seconds",
            "Wall time of one generation.",
            ["model"],
            buckets=_GEN_BUCKETS,
            registry=registry,
        )
        self.finished = Counter(
            "llm_generations_total",
            "Generations by how they ended (stop, length, cancelled, error).",
            ["model", "outcome"],
            registry=registry,
        )
        self.dropped_messages = Counter(
            "llm_prompt_messages_dropped_total",
            "Old conversation turns dropped to fit the input budget.",
            ["model"],
            registry=registry,
        )

    def bind(self, model: str) -> None:
        """Create the series of the served model so they show (at zero) before first use."""
        for metric in (
            self.tokens_generated,
            self.prompt_tokens,
            self.ttft,
            self.generation,
            self.dropped_messages,
        ):
            metric.labels(model)
        for outcome in ("stop", "length", "cancelled", "error"):
            self.finished.labels(model, outcome)
