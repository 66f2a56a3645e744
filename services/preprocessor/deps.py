"""Request-scoped access to the service's settings, engine and limits."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit import ApiError, ServiceState
from services.kit.concurrency import WorkLimiter
from services.preprocessor.engine import DenoiseEngine
from services.preprocessor.metrics import DenoiseMetrics
from services.preprocessor.settings import Settings


@dataclass
class Ctx:
    """What a handler needs from the app state."""

    settings: Settings
    engine: DenoiseEngine
    limiter: WorkLimiter
    metrics: DenoiseMetrics


def context(state: ServiceState) -> Ctx:
    """The ready engine and its limits; 503 while the engine is not ready."""
    state.require_ready()
    settings = state.settings
    assert isinstance(settings, Settings)
    return Ctx(
        settings, state.resources["engine"], state.resources["limiter"], state.resources["metrics"]
    )


def check_rate(settings: Settings, rate: int, param: str) -> None:
    """400 unless the sample rate lies within the configured bounds."""
    if not settings.min_sample_rate <= rate <= settings.max_sample_rate:
        raise ApiError(
            400,
            f"sample rate {rate} Hz is not supported: use {settings.min_sample_rate}"
            f"-{settings.max_sample_rate} Hz",
            param=param,
            code="unsupported_sample_rate",
        )


def check_duration(settings: Settings, n_samples: int, rate: int, param: str) -> None:
    """413 when the clip is longer than the configured limit."""
    seconds = n_samples / rate
    if seconds > settings.max_duration_s:
        raise ApiError(
            413,
            f"audio is {seconds:.1f} s long; the limit is {settings.max_duration_s:g} s",
            param=param,
            code="audio_too_long",
        )
