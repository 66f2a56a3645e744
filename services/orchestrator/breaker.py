"""Circuit breaker per provider: skip a failing provider for a cool-down, then probe it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial


@dataclass
class CircuitBreaker:
    """closed → (N consecutive transient failures) → open → (cool-down) → half-open probe."""

    failure_threshold: int
    cooldown_s: float
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False
    # A probe whose verdict comes later (a stream, `hold_probe`) keeps the slot until then;
    # None: until its verdict (every call the executor judges at once).
    probe_deadline: float | None = None
    probe_serial: int = 0  # which probe holds the slot, so a lapsed one cannot free the next
    on_change: Callable[[bool], None] | None = field(default=None, repr=False)

    @property
    def state(self) -> str:
        """closed, open or half_open."""
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.cooldown_s:
            return "half_open"
        return "open"

    def retry_after_s(self) -> float:
        """Seconds until the next probe is allowed (0 when closed)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_s - (self.clock() - self.opened_at))

    def allow(self) -> bool:
        """Whether a call may go to this provider now (one probe at a time when half-open)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probe_held():
            self.probing = True
            self.probe_deadline = None
            self.probe_serial += 1
            return True
        return False

    def _probe_held(self) -> bool:
        if not self.probing:
            return False
        return self.probe_deadline is None or self.clock() < self.probe_deadline

    def hold_probe(self, seconds: float) -> int | None:
        """Keep the probe slot at most `seconds` for a verdict that comes later (a stream).

        A stream dropped without being read to its end or closed never gets a verdict; its
        slot lapses then instead of keeping the circuit half-open and skipped for good.
        Returns the probe's serial for `release_probe`; None when this call is no probe.
        """
        if not self.probing:
            return None
        self.probe_deadline = self.clock() + seconds
        return self.probe_serial

    def release_probe(self, serial: int | None) -> None:
        """No verdict for probe `serial`: free the slot if that probe still holds it."""
        if serial is not None and self.probing and serial == self.probe_serial:
            self.abandon()

    def success(self) -> None:
        """The provider answered: close the circuit."""
        was_open = self.opened_at is not None
        self.failures = 0
        self.opened_at = None
        self.probing = False
        self.probe_deadline = None
        if was_open and self.on_change:
            self.on_change(False)

    def abandon(self) -> None:
        """A call ended without a verdict (cancelled, or a bug here): free the probe slot."""
        self.probing = False
        self.probe_deadline = None

    def failure(self) -> None:
        """A transient failure: count it, open (or re-open after a failed probe)."""
        self.failures += 1
        was_open = self.opened_at is not None
        if self.probing or self.failures >= self.failure_threshold:
            self.opened_at = self.clock()
            self.probing = False
            self.probe_deadline = None
            if not was_open and self.on_change:
                self.on_change(True)


@dataclass
class BreakerBoard:
    """Breakers keyed by provider name and URL, kept across config reloads."""

    failure_threshold: int
    cooldown_s: float
    on_change: Callable[[str, bool], None] | None = None  # (provider, is_open)
    clock: Callable[[], float] = time.monotonic
    _breakers: dict[tuple[str, str], CircuitBreaker] = field(
        default_factory=dict, init=False, repr=False
    )

    def get(self, provider: str, url: str) -> CircuitBreaker:
        """The breaker for this provider at this URL (a changed URL starts fresh)."""
        key = (provider, url)
        breaker = self._breakers.get(key)
        if breaker is None:
            changed = partial(self.on_change, provider) if self.on_change else None
            breaker = CircuitBreaker(
                self.failure_threshold, self.cooldown_s, self.clock, on_change=changed
            )
            self._breakers[key] = breaker
        return breaker

    def snapshot(self) -> dict[str, dict[str, object]]:
        """State of every breaker, for /v1/pipelines."""
        return {
            name: {
                "url": url,
                "state": b.state,
                "failures": b.failures,
                "retry_after_s": round(b.retry_after_s(), 3),
            }
            for (name, url), b in self._breakers.items()
        }
