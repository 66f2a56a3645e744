"""The interface every model engine shares, and the one way a service loads and checks it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import ClassVar, Protocol, TypeVar

from pydantic_settings import SettingsConfigDict


class EngineUnavailableError(RuntimeError):
    """The configured engine could not be loaded or failed its self-check."""


class Engine(Protocol):
    """A loaded model: its name, what readiness reports about it, and a real self-check."""

    name: str

    @property
    def details(self) -> Mapping[str, object]:
        """Facts for `/health/ready` (model path, device, sample rate...)."""
        ...

    def self_check(self) -> None:
        """Run the model once on a fixed input; raise if it gives no usable result (blocking)."""
        ...


E = TypeVar("E", bound=Engine)


class LoadSettings(Protocol):
    """Settings of a service that loads an engine: how long loading may take."""

    model_config: ClassVar[SettingsConfigDict]

    @property
    def load_timeout_s(self) -> float:
        """Seconds the load (a first download included) may take."""
        ...


S = TypeVar("S", bound=LoadSettings)


async def load_checked(
    factory: Callable[[S], E], settings: S, *, what: str
) -> tuple[E, dict[str, object]]:
    """Load `factory(settings)` in a worker thread within the load timeout, then self-check it.

    The timeout is the settings' `load_timeout_s` (`<PREFIX>LOAD_TIMEOUT_S`). Returns the
    engine and its readiness details (`self_check_ms` added). Readiness means the model has
    answered, so a service calls this before `ServiceState.serve`.
    """
    timeout_s = settings.load_timeout_s
    setting = str(settings.model_config.get("env_prefix", "")).upper() + "LOAD_TIMEOUT_S"
    try:
        engine = await asyncio.wait_for(asyncio.to_thread(factory, settings), timeout=timeout_s)
    except TimeoutError as exc:
        raise EngineUnavailableError(
            f"loading {what} took longer than {setting}={timeout_s:g} s"
        ) from exc
    started = time.perf_counter()
    await asyncio.to_thread(engine.self_check)
    details = dict(engine.details)
    details["self_check_ms"] = round((time.perf_counter() - started) * 1000.0, 1)
    return engine, details
