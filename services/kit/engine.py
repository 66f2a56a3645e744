"""The interface every model engine shares, and the one way a service loads and checks it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar


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


async def load_checked(
    load: Callable[[], E], *, timeout_s: float, timeout_setting: str, what: str
) -> tuple[E, dict[str, object]]:
    """Load an engine in a worker thread within `timeout_s`, then self-check it there.

    Returns the engine and its readiness details (`self_check_ms` added). Readiness means the
    model has answered, so a service calls this before `ServiceState.serve`.
    """
    try:
        engine = await asyncio.wait_for(asyncio.to_thread(load), timeout=timeout_s)
    except TimeoutError as exc:
        raise EngineUnavailableError(
            f"loading {what} took longer than {timeout_setting}={timeout_s:g} s"
        ) from exc
    started = time.perf_counter()
    await asyncio.to_thread(engine.self_check)
    details = dict(engine.details)
    details["self_check_ms"] = round((time.perf_counter() - started) * 1000.0, 1)
    return engine, details
