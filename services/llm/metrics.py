"""Prometheus metrics of the LLM service, registered on the app's own registry."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from services.kit.metrics import MetricSet

_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_GEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_PROMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# How often the event loop's lateness is sampled; cheap (one timer per interval).
LOOP_LAG_INTERVAL_S = 0.02


class LlmMetrics(MetricSet):
    """Token counts, time to first token and generation time, labelled by model."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        model = ["model"]
        self.tokens_generated = self.counter(
            "llm_tokens_generated_total", "Completion tokens generated.", model
        )
        self.prompt_tokens = self.counter(
            "llm_prompt_tokens_total", "Prompt tokens processed.", model
        )
        self.ttft = self.histogram(
            "llm_time_to_first_token_seconds",
            "Time from start of generation to first token.",
            model,
            _TTFT_BUCKETS,
        )
        self.generation = self.histogram(
            "llm_generation_seconds", "Wall time of one generation.", model, _GEN_BUCKETS
        )
        self.finished = self.counter(
            "llm_generations_total",
            "Generations by how they ended (stop, length, cancelled, error).",
            ["model", "outcome"],
        )
        self.prompt_build = self.histogram(
            "llm_prompt_build_seconds",
            "Time to render and tokenise one prompt, turn dropping included (worker thread).",
            model,
            _PROMPT_BUCKETS,
        )
        # Not per model: the loop serves everything. Work wrongly run on the loop shows here
        # as samples as long as that work, and health checks wait just as long.
        self.loop_lag = self.histogram(
            "llm_event_loop_lag_seconds",
            f"How late the event loop ran a timer due every {LOOP_LAG_INTERVAL_S} s.",
            buckets=_LAG_BUCKETS,
        )
        self.dropped_messages = self.counter(
            "llm_prompt_messages_dropped_total",
            "Old conversation turns dropped to fit the input budget.",
            model,
        )

    def bind(self, model: str) -> None:
        """Create the series of the served model so they show (at zero) before first use."""
        for metric in (
            self.tokens_generated,
            self.prompt_tokens,
            self.ttft,
            self.generation,
            self.prompt_build,
            self.dropped_messages,
        ):
            metric.labels(model)
        for outcome in ("stop", "length", "cancelled", "error"):
            self.finished.labels(model, outcome)


async def watch_loop_lag(metrics: LlmMetrics, interval_s: float = LOOP_LAG_INTERVAL_S) -> None:
    """Sample forever how late the event loop wakes a timer (cancel to stop)."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        metrics.loop_lag.observe(max(0.0, loop.time() - due))
