"""Stage executor: try providers in order, fail over only on transient errors."""

from __future__ import annotations

import asyncio
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar

import aiohttp
import httpx

from services.client.errors import parse_error
from services.orchestrator.breaker import BreakerBoard, CircuitBreaker
from services.orchestrator.config import EffectiveStage, ProviderConfig
from services.orchestrator.metrics import OrchestratorMetrics

T = TypeVar("T")
TRANSIENT_STATUS = frozenset({408, 429})


class ProviderError(Exception):
    """A provider answered with an error status; `message` is its own explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class BadResponse(Exception):
    """A provider answered 2xx with something unusable (not the documented shape)."""


class ReplyTooLarge(BadResponse):
    """A provider's reply is bigger than we read: a failed call (transient), never unbounded."""


@dataclass(frozen=True)
class Failure:
    """A classified failure of one call."""

    transient: bool
    kind: str  # connect, timeout, status, transport, bad_response
    message: str
    status: int | None = None


def classify(exc: BaseException) -> Failure | None:
    """Classify a call's exception; None means it is a bug here, not a provider failure."""
    if isinstance(exc, ProviderError):
        transient = exc.status >= 500 or exc.status in TRANSIENT_STATUS
        return Failure(transient, "status", exc.message, exc.status)
    # aiohttp (stage calls) and httpx (the LangChain client) errors alike; aiohttp's
    # timeouts are TimeoutError subclasses.
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return Failure(True, "timeout", "timed out")
    if isinstance(exc, httpx.ConnectError | aiohttp.ClientConnectorError):
        return Failure(
            True, "connect", f"connection failed: {exc}" if str(exc) else "connection failed"
        )
    if isinstance(exc, httpx.TransportError | aiohttp.ClientError):
        return Failure(True, "transport", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, ReplyTooLarge):
        # Transient: the next provider may answer within the cap (a misbehaving or hijacked
        # provider); counts toward its breaker like any other failure.
        return Failure(True, "too_large", str(exc))
    if isinstance(exc, BadResponse):
        return Failure(True, "bad_response", str(exc))
    # Only the LangChain LLM client raises openai errors; when the SDK was never imported
    # there can be none, and importing it here would cost the plain HTTP client ~0.5 s.
    openai = sys.modules.get("openai")
    return None if openai is None else _classify_openai(openai, exc)


def _classify_openai(openai: Any, exc: BaseException) -> Failure | None:
    if isinstance(exc, openai.APITimeoutError):
        return Failure(True, "timeout", "timed out")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        if isinstance(cause, httpx.TimeoutException):
            return Failure(True, "timeout", "timed out")
        if isinstance(cause, httpx.TransportError) and not isinstance(cause, httpx.ConnectError):
            return Failure(True, "transport", f"{type(cause).__name__}: {cause}")
        return Failure(True, "connect", f"connection failed: {cause or exc}")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        transient = status >= 500 or status in TRANSIENT_STATUS
        return Failure(transient, "status", _openai_message(exc), status)
    if isinstance(exc, openai.APIError):  # e.g. a 2xx body the SDK cannot parse
        return Failure(True, "bad_response", f"{type(exc).__name__}: {exc}")
    return None


def _openai_message(exc: Any) -> str:
    fallback = str(getattr(exc, "message", exc))
    return parse_error(getattr(exc, "body", None), fallback).message


@dataclass
class Attempt:
    """One provider tried during a stage."""

    provider: str
    outcome: str
    error: str | None = None
    latency_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "provider": self.provider,
            "outcome": self.outcome,
            "error": self.error,
            "latency_ms": self.latency_ms,
        }


@dataclass
class StageRecord:
    """What happened in one stage: `{stage, provider, url, attempts, status, latency_ms, error}`."""

    stage: str
    provider: str | None = None
    url: str | None = None
    attempts: int = 0
    status: str = "ok"  # ok, skipped, failed
    latency_ms: float = 0.0
    error: str | None = None
    note: str | None = None
    tried: list[Attempt] = field(default_factory=list)
    tools_called: list[str] = field(default_factory=list)  # llm stage: tools run, in order

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {
            "stage": self.stage,
            "provider": self.provider,
            "url": self.url,
            "attempts": self.attempts,
            "status": self.status,
            "latency_ms": self.latency_ms,
        }
        if self.error is not None:
            out["error"] = self.error
        if self.note is not None:
            out["note"] = self.note
        if self.tools_called:
            out["tools_called"] = self.tools_called
        if len(self.tried) > 1 or (self.tried and self.tried[0].outcome != "ok"):
            out["tried"] = [a.as_dict() for a in self.tried]
        return out


class StageFailed(Exception):
    """Every provider of a stage failed transiently (or was skipped by its breaker)."""

    def __init__(
        self,
        record: StageRecord,
        timed_out: bool,
        retry_after_s: float | None,
        rate_limited: bool = False,
    ) -> None:
        tried = (
            "; ".join(f"{a.provider}: {a.error or a.outcome}" for a in record.tried)
            or "no provider"
        )
        super().__init__(f"stage '{record.stage}' failed with every provider ({tried})")
        self.record = record
        self.timed_out = timed_out
        self.retry_after_s = retry_after_s
        # Every provider said 429: the caller is over a limit (e.g. guardrails' per-user one).
        self.rate_limited = rate_limited


class StageRejected(Exception):
    """A provider refused the request with a non-transient 4xx: no fallback."""

    def __init__(self, record: StageRecord, status: int, message: str) -> None:
        super().__init__(
            f"stage '{record.stage}' provider '{record.provider}' rejected the "
            f"request (HTTP {status}): {message}"
        )
        self.record = record
        self.status = status
        self.message = message


Call = Callable[[str, ProviderConfig, float], Awaitable[T]]


@dataclass(frozen=True)
class _Answered(Generic[T]):
    """An attempt that got a usable result."""

    value: T


class _Again(Enum):
    """How a transiently failed attempt ended, for the decision loop."""

    RESEND = "resend"  # a stale keep-alive connection: send again at once, no breaker verdict
    FAILED = "failed"  # a real failure (the breaker counted it, unless it was a 429)


@dataclass(frozen=True)
class _Target:
    """One provider as the decision loop tries it."""

    name: str
    config: ProviderConfig
    timeout_s: float
    breaker: CircuitBreaker


@dataclass
class _Ledger:
    """What one stage run records and meters: its StageRecord and its failures in sum."""

    pipeline: str
    record: StageRecord
    metrics: OrchestratorMetrics
    started: float = field(default_factory=time.perf_counter)
    only_timeouts: bool = True
    only_limited: bool = True
    retry_after: float | None = None

    def note(
        self, provider: str, outcome: str, metered: str, error: str | None, seconds: float | None
    ) -> None:
        """One entry in the record's `tried` list and one metric sample."""
        ms = None if seconds is None else round(seconds * 1000, 2)
        self.record.tried.append(Attempt(provider, outcome, error, ms))
        self.metrics.record_attempt(self.pipeline, self.record.stage, provider, metered, seconds)

    def skipped(self, provider: str, retry_after_s: float) -> None:
        """The provider's circuit is open: it was not called."""
        self.note(provider, "circuit_open", "circuit_open", "circuit open", None)
        wait = self.retry_after
        self.retry_after = retry_after_s if wait is None else min(wait, retry_after_s)
        self.only_timeouts = self.only_limited = False

    def failed(self, provider: str, failure: Failure, timeout_s: float, seconds: float) -> None:
        """A transient failure of one call."""
        self.only_timeouts = self.only_timeouts and failure.kind == "timeout"
        self.only_limited = self.only_limited and failure.status == 429
        msg = failure.message if failure.kind != "timeout" else f"timed out after {timeout_s:g}s"
        if failure.status is not None:
            msg = f"HTTP {failure.status}: {msg}"
        self.note(provider, failure.kind, "transient_error", msg, seconds)

    def settled(self, status: str, error: str | None) -> None:
        """A streamed call's end: the record's status, error and latency (the whole stream)."""
        self._close(status, error)

    def answered(self) -> StageRecord:
        """The stage succeeded: its finished record."""
        self._close("ok", None)
        return self.record

    def rejected(self, provider: str, failure: Failure, seconds: float) -> StageRejected:
        """A non-transient 4xx ends the stage: the error to raise."""
        self._close("failed", f"HTTP {failure.status}: {failure.message}")
        self.note(provider, "rejected", "rejected", self.record.error, seconds)
        return StageRejected(self.record, failure.status or 400, failure.message)

    def exhausted(self) -> StageFailed:
        """Every provider failed or was skipped: the error to raise."""
        self._close("failed", "; ".join(f"{a.provider}: {a.error}" for a in self.record.tried))
        called = self.record.attempts > 0
        return StageFailed(
            self.record,
            self.only_timeouts and called,
            self.retry_after,
            rate_limited=self.only_limited and called,
        )

    def _close(self, status: str, error: str | None) -> None:
        self.record.latency_ms = round((time.perf_counter() - self.started) * 1000, 2)
        self.record.status, self.record.error = status, error


class Deferred(ABC):
    """A call's value whose verdict comes later: a stream, judged when it ends, not when it
    opened (a provider that dies mid-reply must count as failing, and its first token must not
    reset its breaker). The executor hands it a `StreamVerdict` instead of judging at once."""

    @abstractmethod
    def defer(self, verdict: StreamVerdict) -> None:
        """Keep `verdict`, to settle it once when the stream ends."""


class StreamVerdict:
    """The deferred verdict of one streamed call: its breaker verdict, `tried` entry, metric
    sample and stage record, settled once when the stream ends (later calls are no-ops)."""

    def __init__(self, ledger: _Ledger, target: _Target, started: float) -> None:
        self._ledger = ledger
        self._target = target
        self._started = started
        # A half-open probe keeps its slot while the stream runs, at most the call's timeout
        # (the plain client's whole-stream bound): an unclosed stream cannot hold it for good.
        self._probe = target.breaker.hold_probe(target.timeout_s)
        self.settled = False

    def _settle(self) -> float | None:
        """Seconds since the call began, or None when already settled."""
        if self.settled:
            return None
        self.settled = True
        return time.perf_counter() - self._started

    def completed(self) -> None:
        """The stream ended normally: the provider answered."""
        if (seconds := self._settle()) is None:
            return
        self._target.breaker.success()
        self._ledger.note(self._target.name, "ok", "ok", None, seconds)
        self._ledger.settled("ok", None)

    def broke(self, exc: BaseException) -> Failure | None:
        """The stream failed mid-reply with `exc`: judged as `_attempt` judges a failed call.

        Returns the classification (None: a bug here, which gets no verdict).
        """
        failure = classify(exc)
        if (seconds := self._settle()) is None:
            return failure
        target, ledger, breaker = self._target, self._ledger, self._target.breaker
        if failure is None:
            breaker.release_probe(self._probe)  # a bug here, not a provider failure
            ledger.settled("failed", f"{target.name}: {type(exc).__name__} here (mid-stream)")
            return None
        if not failure.transient:
            breaker.success()  # the provider is alive and answered
            error = f"HTTP {failure.status}: {failure.message}"
            ledger.note(target.name, "rejected", "rejected", error, seconds)
        else:
            if failure.status == 429:
                breaker.release_probe(self._probe)  # busy is not broken (as in `_attempt`)
            else:
                breaker.failure()
            ledger.failed(target.name, failure, target.timeout_s, seconds)
        # The error names the provider and the failure only, never the reply so far.
        ledger.settled("failed", f"{target.name}: {ledger.record.tried[-1].error} (mid-stream)")
        return failure

    def cancelled(self) -> None:
        """The stream was stopped before its end (barge-in, cancel, disconnect, or the turn
        dropping the rest after a refused sentence): no verdict.

        A user interrupting says nothing about the provider: counted as a success it would
        close a circuit on a provider that may be failing, counted as a failure a user who
        keeps interrupting would open the circuit of a healthy one. A probe frees its slot.
        """
        if (seconds := self._settle()) is None:
            return
        self._target.breaker.release_probe(self._probe)
        self._ledger.note(self._target.name, "cancelled", "cancelled", None, seconds)
        self._ledger.record.note = "stream stopped before its end (no verdict)"
        self._ledger.settled("ok", None)


class StageExecutor:
    """Runs one stage's call against its providers with timeouts, retries and breakers."""

    def __init__(
        self, breakers: BreakerBoard, metrics: OrchestratorMetrics, default_timeout_s: float
    ) -> None:
        self.breakers = breakers
        self.metrics = metrics
        self.default_timeout_s = default_timeout_s

    async def run(
        self,
        pipeline: str,
        stage: EffectiveStage,
        providers: dict[str, ProviderConfig],
        call: Call[T],
    ) -> tuple[T, StageRecord]:
        """Return the first provider's result; raise StageRejected or StageFailed.

        The decision loop: providers in order, a provider whose circuit is open is skipped;
        each gets 1 + `retries` calls, plus one resend of a stale connection, and no more once
        its circuit opens; a non-transient 4xx ends the stage (raised by `_attempt`). A
        `Deferred` result (a stream) is returned unjudged; its `StreamVerdict` settles it.
        """
        ledger = _Ledger(pipeline, StageRecord(stage=stage.stage), self.metrics)
        for index, name in enumerate(stage.providers):
            prov = providers[name]
            ledger.record.provider, ledger.record.url = name, prov.url
            breaker = self.breakers.get(name, prov.url)
            if not breaker.allow():
                ledger.skipped(name, breaker.retry_after_s())
                continue
            timeout = stage.timeout_s or prov.timeout_s or self.default_timeout_s
            target = _Target(name, prov, timeout, breaker)
            retries = stage.retries if stage.retries is not None else prov.retries
            calls, resend = 0, True
            while calls <= retries:
                outcome = await self._attempt(ledger, target, call, resend)
                if isinstance(outcome, _Answered):
                    return outcome.value, ledger.answered()
                if outcome is _Again.RESEND:
                    resend = False
                    continue
                calls += 1
                # Asked only when another call follows: allow() takes a half-open probe slot.
                if calls <= retries and not breaker.allow():
                    break  # the circuit just opened: stop hammering this provider
            if index < len(stage.providers) - 1:
                self.metrics.fallbacks.labels(pipeline, stage.stage, name).inc()
        raise ledger.exhausted()

    @staticmethod
    async def _attempt(
        ledger: _Ledger, target: _Target, call: Call[T], resend: bool
    ) -> _Answered[T] | _Again:
        """Call one provider once under its timeout, give its breaker the verdict, record it."""
        breaker = target.breaker
        ledger.record.attempts += 1
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(target.timeout_s):
                value = await call(target.name, target.config, target.timeout_s)
        except asyncio.CancelledError:
            breaker.abandon()  # the caller went away; a half-open probe is not spent
            raise
        except Exception as exc:
            elapsed = time.perf_counter() - t0
            failure = classify(exc)
            if failure is None:
                breaker.abandon()  # a bug here, not a provider failure
                raise
            if not failure.transient:
                # The provider is alive and answered: a 4xx is the request's fault.
                breaker.success()
                raise ledger.rejected(target.name, failure, elapsed) from exc
            if failure.kind == "transport" and resend:
                # A keep-alive connection the server closed as we reused it (both sides idle
                # out at ~5 s): resend once at once, not a provider fault.
                error = failure.message + " (resent once)"
                ledger.note(target.name, "transport", "resent", error, elapsed)
                return _Again.RESEND
            if failure.status == 429:
                # Back-pressure from a live provider ("queue full"): move on, but do not count
                # it toward opening the circuit — an open circuit on a busy but healthy single
                # provider turns overload into an outage.
                breaker.abandon()
            else:
                breaker.failure()
            ledger.failed(target.name, failure, target.timeout_s, elapsed)
            return _Again.FAILED
        if isinstance(value, Deferred):
            # A stream past its first piece: judged (and recorded) when it ends.
            value.defer(StreamVerdict(ledger, target, t0))
            return _Answered(value)
        breaker.success()
        ledger.note(target.name, "ok", "ok", None, time.perf_counter() - t0)
        return _Answered(value)
