"""Stage records as the orchestrator reports them, for fakes that answer in its shape."""

from __future__ import annotations

from typing import Any


def stage_record(
    stage: str, provider: str, url: str, latency_ms: float, attempts: int = 1, **extra: Any
) -> dict[str, Any]:
    """One served stage: `{stage, provider, url, attempts, status, latency_ms, ...extra}`."""
    return {
        "stage": stage,
        "provider": provider,
        "url": url,
        "attempts": attempts,
        "status": "ok",
        "latency_ms": latency_ms,
        **extra,
    }
