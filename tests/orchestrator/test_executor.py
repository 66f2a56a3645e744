"""The stage executor's decision rules, driven with scripted provider calls (no servers).

Each provider gets a script of outcomes (a value to return or an exception to raise), one per
call; the tests pin what is tried, what is recorded, what is metered and how the breakers move.
A streamed call's script step is a `Scripted` reply stream, judged when it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from services.orchestrator.backends.llm import PrimedStream
from services.orchestrator.breaker import BreakerBoard
from services.orchestrator.config import EffectiveStage, ProviderConfig
from services.orchestrator.executor import (
    BadResponse,
    ProviderError,
    StageExecutor,
    StageFailed,
    StageRecord,
    StageRejected,
)
from services.orchestrator.metrics import OrchestratorMetrics


class Scripted(PrimedStream):
    """A reply stream (the LLM clients' base class) that gives its steps: pieces, then its
    end, or an exception where one is scripted, or waits for ever on `hang`."""

    def __init__(self, steps: Iterable[str | BaseException]) -> None:
        self.steps = list(steps)
        self.closed = False

    async def _next_piece(self) -> str | None:
        if not self.steps:
            return None
        step = self.steps.pop(0)
        if step == "hang":
            await asyncio.sleep(60)
        if isinstance(step, BaseException):
            raise step
        return step

    async def _close(self) -> None:
        self.closed = True


Step = str | BaseException | Scripted


class Clock:
    """A hand-moved monotonic clock for the breakers."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Providers:
    """Scripted providers: each call to a provider takes the next step of its script."""

    def __init__(self, **scripts: Iterable[Step]) -> None:
        self.scripts = {name: list(steps) for name, steps in scripts.items()}
        self.calls: list[str] = []
        self.config = {
            name: ProviderConfig(capability="llm", url=f"http://{name}:1") for name in self.scripts
        }

    async def call(self, name: str, prov: ProviderConfig, timeout_s: float) -> str:
        """The stage call the executor makes: return or raise the provider's next step."""
        assert prov is self.config[name] and timeout_s > 0
        self.calls.append(name)
        step = self.scripts[name].pop(0)
        if isinstance(step, BaseException):
            raise step
        assert isinstance(step, str), "a stream in a plain call's script"
        return step

    async def stream(self, name: str, prov: ProviderConfig, timeout_s: float) -> Scripted:
        """A streamed call: the next step's stream, opened on its first piece (or raised)."""
        self.calls.append(name)
        step = self.scripts[name].pop(0)
        if isinstance(step, BaseException):
            raise step
        assert isinstance(step, Scripted), "a plain value in a streamed call's script"
        return await step.start()


class Rig:
    """An executor with its own metrics registry, breakers and clock."""

    def __init__(self, failure_threshold: int = 3, cooldown_s: float = 10.0) -> None:
        self.registry = CollectorRegistry()
        self.clock = Clock()
        self.breakers = BreakerBoard(failure_threshold, cooldown_s, clock=self.clock)
        self.executor = StageExecutor(self.breakers, OrchestratorMetrics(self.registry), 5.0)

    async def run(
        self, providers: Providers, retries: int | None = None, timeout_s: float | None = None
    ) -> tuple[str, list[tuple[str, str]], int]:
        """Run one stage; (result, [(provider, outcome)], attempts)."""
        stage = EffectiveStage(
            "llm", tuple(providers.scripts), False, retries, timeout_s, options={}
        )
        value, record = await self.executor.run("p", stage, providers.config, providers.call)
        assert record.status == "ok" and record.error is None
        return value, [(a.provider, a.outcome) for a in record.tried], record.attempts

    async def stream(self, providers: Providers) -> tuple[Scripted, StageRecord]:
        """Run one streamed stage (one call per provider): its open stream and its record."""
        stage = EffectiveStage("llm", tuple(providers.scripts), False, 0, None, options={})
        return await self.executor.run("p", stage, providers.config, providers.stream)

    def count(self, provider: str, outcome: str) -> float:
        """orchestrator_stage_requests_total for one provider and outcome."""
        labels = {"pipeline": "p", "stage": "llm", "provider": provider, "outcome": outcome}
        return self.registry.get_sample_value("orchestrator_stage_requests_total", labels) or 0.0

    def fallbacks(self, provider: str) -> float:
        """orchestrator_fallbacks_total away from one provider."""
        labels = {"pipeline": "p", "stage": "llm", "provider": provider}
        return self.registry.get_sample_value("orchestrator_fallbacks_total", labels) or 0.0

    def breaker(self, provider: str) -> tuple[str, int]:
        """(state, consecutive failures) of a provider's breaker."""
        b = self.breakers.get(provider, f"http://{provider}:1")
        return b.state, b.failures


def stale() -> aiohttp.ServerDisconnectedError:
    """What reusing a keep-alive connection the server just closed raises."""
    return aiohttp.ServerDisconnectedError()


async def test_first_provider_answers():
    rig = Rig()
    value, tried, attempts = await rig.run(Providers(a=["A"], b=["B"]))
    assert (value, tried, attempts) == ("A", [("a", "ok")], 1)
    assert rig.count("a", "ok") == 1 and rig.fallbacks("a") == 0


async def test_a_stale_connection_is_resent_once_without_a_breaker_verdict():
    rig = Rig(failure_threshold=1)
    providers = Providers(a=[stale(), "A"], b=["B"])
    value, tried, attempts = await rig.run(providers)
    assert (value, tried, attempts) == ("A", [("a", "transport"), ("a", "ok")], 2)
    assert rig.count("a", "resent") == 1 and rig.count("a", "ok") == 1
    assert rig.breaker("a") == ("closed", 0)


async def test_a_second_transport_error_is_a_failure_and_falls_over():
    rig = Rig()
    providers = Providers(a=[stale(), stale()], b=["B"])
    value, tried, attempts = await rig.run(providers)
    assert value == "B" and attempts == 3
    assert tried == [("a", "transport"), ("a", "transport"), ("b", "ok")]
    assert rig.count("a", "resent") == 1 and rig.count("a", "transient_error") == 1
    assert rig.fallbacks("a") == 1 and rig.breaker("a") == ("closed", 1)


async def test_retries_call_the_same_provider_again_and_the_resend_does_not_use_one():
    rig = Rig(failure_threshold=5)
    steps: list[Step] = [TimeoutError(), stale(), ProviderError(503, "busy"), "A"]
    value, tried, attempts = await rig.run(Providers(a=steps, b=["B"]), retries=2)
    assert value == "A" and attempts == 4
    assert [o for _, o in tried] == ["timeout", "transport", "status", "ok"]
    assert rig.breaker("a") == ("closed", 0)  # the success closed it again


async def test_timeouts_name_the_limit_and_all_timeouts_are_a_timeout():
    rig = Rig()
    providers = Providers(a=[TimeoutError()], b=[TimeoutError()])
    with pytest.raises(StageFailed) as caught:
        await rig.run(providers, timeout_s=2.5)
    exc = caught.value
    assert exc.timed_out and not exc.rate_limited and exc.retry_after_s is None
    assert exc.record.status == "failed" and exc.record.attempts == 2
    assert exc.record.error == "a: timed out after 2.5s; b: timed out after 2.5s"
    assert rig.fallbacks("a") == 1 and rig.fallbacks("b") == 0


async def test_a_slow_provider_is_cut_at_its_timeout():
    async def slow(name: str, prov: ProviderConfig, timeout_s: float) -> str:
        await asyncio.sleep(10)
        return "late"

    rig = Rig()
    stage = EffectiveStage("llm", ("a",), False, None, 0.05, options={})
    with pytest.raises(StageFailed) as caught:
        await rig.executor.run("p", stage, Providers(a=[]).config, slow)
    assert caught.value.timed_out and caught.value.record.tried[0].outcome == "timeout"


async def test_a_4xx_is_returned_at_once_and_counts_as_alive():
    rig = Rig()
    providers = Providers(a=[ProviderError(500, "x"), ProviderError(422, "bad field")], b=["B"])
    with pytest.raises(StageRejected) as caught:
        await rig.run(providers, retries=1)
    exc = caught.value
    assert (exc.status, exc.message) == (422, "bad field")
    assert exc.record.error == "HTTP 422: bad field" and exc.record.status == "failed"
    assert [a.outcome for a in exc.record.tried] == ["status", "rejected"]
    assert providers.calls == ["a", "a"] and rig.count("a", "rejected") == 1
    assert rig.breaker("a") == ("closed", 0)


async def test_429_everywhere_is_rate_limited_and_never_opens_a_circuit():
    rig = Rig(failure_threshold=1)
    providers = Providers(a=[ProviderError(429, "full")], b=[ProviderError(429, "full")])
    with pytest.raises(StageFailed) as caught:
        await rig.run(providers)
    assert caught.value.rate_limited and not caught.value.timed_out
    assert caught.value.record.error == "a: HTTP 429: full; b: HTTP 429: full"
    assert rig.breaker("a") == ("closed", 0) and rig.breaker("b") == ("closed", 0)


async def test_an_open_circuit_is_skipped_then_probed_after_the_cool_down():
    rig = Rig(failure_threshold=1, cooldown_s=10.0)
    value, tried, _ = await rig.run(Providers(a=[ProviderError(503, "down")], b=["B"]))
    assert value == "B" and rig.breaker("a") == ("open", 1)

    providers = Providers(a=["A"], b=["B"])
    value, tried, attempts = await rig.run(providers)
    assert (value, tried, attempts) == ("B", [("a", "circuit_open"), ("b", "ok")], 1)
    assert providers.calls == ["b"] and rig.count("a", "circuit_open") == 1
    assert rig.fallbacks("a") == 1  # only the real failure above; a skip is not a fallback

    rig.clock.now += 10.0  # cool-down over: one probe goes to the provider, and closes it
    value, tried, _ = await rig.run(Providers(a=["A"], b=["B"]))
    assert (value, tried) == ("A", [("a", "ok")]) and rig.breaker("a") == ("closed", 0)


async def test_every_circuit_open_says_when_to_retry_and_calls_nobody():
    rig = Rig(failure_threshold=1, cooldown_s=10.0)
    with pytest.raises(StageFailed):
        await rig.run(Providers(a=[ProviderError(502, "x")], b=[ProviderError(502, "y")]))
    rig.clock.now += 4.0
    providers = Providers(a=["A"], b=["B"])
    with pytest.raises(StageFailed) as caught:
        await rig.run(providers)
    exc = caught.value
    assert providers.calls == [] and exc.record.attempts == 0
    assert exc.retry_after_s == pytest.approx(6.0)
    assert not exc.timed_out and not exc.rate_limited
    assert exc.record.error == "a: circuit open; b: circuit open"


async def test_a_circuit_that_opens_stops_the_retries():
    rig = Rig(failure_threshold=2)
    steps: list[Step] = [BadResponse("junk")] * 5
    value, tried, attempts = await rig.run(Providers(a=steps, b=["B"]), retries=4)
    assert value == "B" and attempts == 3
    assert tried == [("a", "bad_response"), ("a", "bad_response"), ("b", "ok")]
    assert rig.breaker("a") == ("open", 2)


async def test_a_failed_probe_reopens_and_moves_on():
    rig = Rig(failure_threshold=1, cooldown_s=10.0)
    await rig.run(Providers(a=[ProviderError(503, "down")], b=["B"]))
    rig.clock.now += 10.0
    providers = Providers(a=[ProviderError(503, "still down"), "A"], b=["B"])
    value, tried, _ = await rig.run(providers, retries=1)
    assert value == "B" and tried == [("a", "status"), ("b", "ok")]
    assert rig.breaker("a") == ("open", 2)


async def test_a_bug_here_propagates_and_frees_the_probe():
    rig = Rig(failure_threshold=1, cooldown_s=10.0)
    await rig.run(Providers(a=[ProviderError(503, "down")], b=["B"]))
    rig.clock.now += 10.0
    with pytest.raises(KeyError):
        await rig.run(Providers(a=[KeyError("oops")], b=["B"]))
    state = rig.breakers.get("a", "http://a:1")
    assert state.state == "half_open" and not state.probing  # the next call may probe


async def test_a_cancelled_call_frees_the_probe():
    rig = Rig(failure_threshold=1, cooldown_s=10.0)
    await rig.run(Providers(a=[ProviderError(503, "down")], b=["B"]))
    rig.clock.now += 10.0
    started = asyncio.Event()

    async def hang(name: str, prov: ProviderConfig, timeout_s: float) -> str:
        started.set()
        await asyncio.sleep(60)
        return "never"

    stage = EffectiveStage("llm", ("a",), False, None, None, options={})
    task = asyncio.create_task(rig.executor.run("p", stage, Providers(a=[]).config, hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    breaker = rig.breakers.get("a", "http://a:1")
    assert breaker.state == "half_open" and not breaker.probing


async def test_a_probe_answered_429_leaves_the_probe_slot_free():
    # A busy provider's 429 is no verdict; the slot must not stay taken with no call out,
    # or the circuit would stay half-open and skipped for good.
    rig = Rig(failure_threshold=1, cooldown_s=10.0)
    await rig.run(Providers(a=[ProviderError(503, "down")], b=["B"]))
    rig.clock.now += 10.0
    value, tried, _ = await rig.run(Providers(a=[ProviderError(429, "full")], b=["B"]))
    assert value == "B" and tried == [("a", "status"), ("b", "ok")]
    value, tried, _ = await rig.run(Providers(a=["A"], b=["B"]))
    assert (value, tried) == ("A", [("a", "ok")]) and rig.breaker("a") == ("closed", 0)


async def read(stream: Scripted) -> list[str]:
    """Every piece of a stream, as a reader does (the stream is closed after, as turn.reply)."""
    pieces: list[str] = []
    try:
        async for piece in stream:
            pieces.append(piece)
    finally:
        await stream.aclose()
    return pieces


async def test_a_stream_is_judged_at_its_end_not_at_its_first_piece():
    rig = Rig(failure_threshold=3)
    providers = Providers(a=[ProviderError(503, "down"), Scripted(["Hel", "lo"])], b=[])
    stage = EffectiveStage("llm", ("a", "b"), False, 1, None, options={})
    stream, record = await rig.executor.run("p", stage, providers.config, providers.stream)
    # The first piece is no verdict: it must not reset the failure the retry followed.
    assert rig.breaker("a") == ("closed", 1) and rig.count("a", "ok") == 0
    assert await read(stream) == ["Hel", "lo"] and stream.closed
    assert rig.breaker("a") == ("closed", 0) and rig.count("a", "ok") == 1
    assert [(a.provider, a.outcome) for a in record.tried] == [("a", "status"), ("a", "ok")]
    assert record.status == "ok" and record.error is None


async def test_a_stream_broken_mid_reply_is_a_failure_that_opens_the_circuit():
    rig = Rig(failure_threshold=2)
    for exc, error, state in [
        (ProviderError(502, "model crashed"), "a: HTTP 502: model crashed (mid-stream)", "closed"),
        (TimeoutError(), "a: timed out after 5s (mid-stream)", "open"),
    ]:
        stream, record = await rig.stream(Providers(a=[Scripted(["Secret", exc])], b=[]))
        with pytest.raises(type(exc)):
            await read(stream)
        assert record.status == "failed" and record.error == error  # no reply text in it
        assert record.tried[-1].outcome in ("status", "timeout")
        assert rig.breaker("a")[0] == state
    assert rig.breaker("a") == ("open", 2) and rig.count("a", "transient_error") == 2
    assert rig.count("a", "ok") == 0

    providers = Providers(a=[Scripted(["A"])], b=[Scripted(["B"])])
    stream, record = await rig.stream(providers)
    assert await read(stream) == ["B"] and providers.calls == ["b"]
    assert [(a.provider, a.outcome) for a in record.tried] == [("a", "circuit_open"), ("b", "ok")]


async def test_a_stream_the_client_closes_is_no_verdict_and_frees_the_probe():
    rig = Rig(failure_threshold=1, cooldown_s=10.0)
    await rig.run(Providers(a=[ProviderError(503, "down")], b=["B"]))
    rig.clock.now += 10.0
    stream, record = await rig.stream(Providers(a=[Scripted(["A1", "A2"])], b=[]))
    breaker = rig.breakers.get("a", "http://a:1")
    assert breaker.probing  # the probe's slot is held while its stream runs
    other, _ = await rig.stream(Providers(a=[Scripted(["A"])], b=[Scripted(["B"])]))
    assert await read(other) == ["B"]

    assert await anext(aiter(stream)) == "A1"
    await stream.aclose()  # barge-in: the user cut the reply
    assert breaker.state == "half_open" and not breaker.probing and breaker.failures == 1
    assert rig.count("a", "cancelled") == 1 and rig.count("a", "ok") == 0
    assert record.status == "ok" and record.tried[-1].outcome == "cancelled"

    stream, _ = await rig.stream(Providers(a=[Scripted(["A"])], b=[]))  # the next probe
    assert await read(stream) == ["A"] and rig.breaker("a") == ("closed", 0)


async def test_a_cancelled_read_is_no_verdict():
    rig = Rig(failure_threshold=1)
    stream, record = await rig.stream(Providers(a=[Scripted(["A", "hang"])], b=[]))
    pieces: list[str] = []
    started = asyncio.Event()

    async def reader() -> None:
        async for piece in stream:
            pieces.append(piece)
            started.set()

    task = asyncio.create_task(reader())
    await started.wait()
    task.cancel()  # the session went away mid-reply
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pieces == ["A"] and rig.breaker("a") == ("closed", 0)
    assert rig.count("a", "cancelled") == 1 and rig.count("a", "transient_error") == 0
    assert record.status == "ok" and record.tried[-1].outcome == "cancelled"


async def test_an_abandoned_stream_holds_the_probe_only_until_its_timeout():
    rig = Rig(failure_threshold=1, cooldown_s=10.0)
    await rig.run(Providers(a=[ProviderError(503, "down")], b=["B"]))
    rig.clock.now += 10.0
    abandoned, _ = await rig.stream(Providers(a=[Scripted(["A", "B"])], b=[]))
    providers = Providers(a=[Scripted(["A"])], b=[Scripted(["B"])])
    skipped, _ = await rig.stream(providers)
    assert await read(skipped) == ["B"] and providers.calls == ["b"]

    rig.clock.now += 5.0  # the call's timeout: the never-closed stream's slot lapses
    probe, _ = await rig.stream(Providers(a=[Scripted(["A"])], b=[]))
    await abandoned.aclose()  # a late close does not free the slot of the probe after it
    assert rig.breakers.get("a", "http://a:1").probing
    assert await read(probe) == ["A"] and rig.breaker("a") == ("closed", 0)


async def test_a_bug_here_mid_stream_is_no_verdict_and_frees_the_probe():
    rig = Rig(failure_threshold=1, cooldown_s=10.0)
    await rig.run(Providers(a=[ProviderError(503, "down")], b=["B"]))
    rig.clock.now += 10.0
    stream, record = await rig.stream(Providers(a=[Scripted(["A", KeyError("oops")])], b=[]))
    with pytest.raises(KeyError):
        await read(stream)
    breaker = rig.breakers.get("a", "http://a:1")
    assert breaker.state == "half_open" and not breaker.probing and breaker.failures == 1
    assert record.status == "failed" and record.error == "a: KeyError here (mid-stream)"
    assert rig.count("a", "transient_error") == 1 and rig.count("a", "ok") == 0  # the 503 only
