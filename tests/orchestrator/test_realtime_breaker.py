"""Live replies and the LLM provider's circuit breaker (issue #16), through the `openai` SDK's
realtime client against fake stage services whose LLM stream can die mid-reply.

A streamed reply is judged when it ends: read to its end it is a success, broken mid-reply a
failure (so a provider that always dies after its first tokens opens its circuit and the next
turn goes to the fallback), cut by the client no verdict at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from testkit.orchestrator import Fake, all_urls, config_doc, orchestrator, write_config
from testkit.realtime import connect, metrics, text_turn_start, until

pytestmark = pytest.mark.slow  # real uvicorn servers

REPLY = "One two three four. Five six seven eight."
THRESHOLD = 2


@pytest.fixture
def base(tmp_path: Path, fakes: dict[str, Fake]) -> Iterator[str]:
    """An orchestrator of its own (fresh breakers): llm-a on primary, llm-b on backup."""
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    with orchestrator(path, breaker_failures=THRESHOLD, breaker_cooldown_s=300.0) as url:
        yield url


@pytest.fixture(autouse=True)
def _reply(fakes: dict[str, Fake]) -> Iterator[None]:
    """Both LLMs say REPLY; the echoing fake is back for the next test module."""
    for fake in fakes.values():
        fake.knobs.reply = REPLY
    yield
    for fake in fakes.values():
        fake.knobs.reply = None


async def turn(conn: Any, text: str) -> tuple[Any, list[Any]]:
    """One text turn: its response.done and every event before it."""
    await text_turn_start(conn, text)
    seen: list[Any] = []
    done = await until(conn, "response.done", seen)
    return done, seen


def spoken(events: list[Any]) -> str:
    """The reply's transcript as streamed."""
    return "".join(e.delta for e in events if e.type == "response.output_audio_transcript.delta")


def circuit(base: str, provider: str) -> dict[str, Any]:
    """The provider's breaker as GET /v1/pipelines shows it."""
    circuits = httpx.get(base + "/v1/pipelines", timeout=10).json()["circuits"]
    state: dict[str, Any] = circuits[provider]
    return state


def llm_calls(base: str, provider: str, outcome: str) -> float:
    """orchestrator_stage_requests_total of the llm stage for one provider and outcome."""
    want = {"pipeline": "voice", "stage": "llm", "provider": provider, "outcome": outcome}
    for family in text_string_to_metric_families(metrics(base)):
        for sample in family.samples:
            if sample.name == "orchestrator_stage_requests_total" and sample.labels == want:
                return float(sample.value)
    return 0.0


@pytest.mark.parametrize("llm_client", ["http", "langchain"])
@pytest.mark.parametrize(
    ("how", "code"),
    [("drop", "stage_failed"), ("error", "stage_failed"), ("stall", "stage_timeout")],
)
def test_a_provider_that_dies_mid_reply_opens_its_circuit(
    tmp_path: Path, fakes: dict[str, Fake], llm_client: str, how: str, code: str
) -> None:
    """Each reply fails after its first words (connection cut, an error event, or no more
    tokens until the call's timeout); after the threshold the circuit is open and the next
    turn is answered by the fallback provider without calling the dead one."""
    primary = fakes["primary"].knobs
    primary.stream_break_after = 5  # the first sentence and one word of the second
    primary.stream_break = how
    doc = config_doc(all_urls(fakes), timeout_s=1.5)  # a stalled stream times out soon
    path = write_config(tmp_path / "p.yaml", doc)

    async def body(base: str) -> None:
        async with connect(base) as conn:
            await until(conn, "session.created")
            for n in range(THRESHOLD):
                done, seen = await turn(conn, f"question {n}")
                assert done.response.status == "failed"
                error = next(e for e in seen if e.type == "error").error
                assert error.code == code and "mid-reply" in error.message
                assert spoken(seen) == "One two three four."  # spoken before it broke
                state = circuit(base, "llm-a")
                assert state["failures"] == n + 1  # the first words reset nothing
            assert circuit(base, "llm-a")["state"] == "open"
            done, seen = await turn(conn, "once more")
            assert done.response.status == "completed" and spoken(seen) == REPLY

    settings = {"breaker_failures": THRESHOLD, "breaker_cooldown_s": 300.0}
    with orchestrator(path, llm_client=llm_client, **settings) as base:
        asyncio.run(body(base))
        text = metrics(base)
        assert 'orchestrator_circuit_open{provider="llm-a"} 1.0' in text
        assert llm_calls(base, "llm-a", "transient_error") == THRESHOLD
        assert llm_calls(base, "llm-a", "ok") == 0
        assert llm_calls(base, "llm-a", "circuit_open") == 1
        assert llm_calls(base, "llm-b", "ok") == 1
    assert primary.calls["llm"] == THRESHOLD and primary.streams_broken == THRESHOLD
    assert fakes["backup"].knobs.calls["llm"] == 1


def test_a_client_cancel_is_no_failure_and_a_whole_reply_is_a_success(
    base: str, fakes: dict[str, Fake]
) -> None:
    """One mid-reply failure, then replies the client cancels (more than the threshold): the
    circuit stays closed with its one failure; a reply read to its end resets it."""
    primary = fakes["primary"].knobs

    async def body() -> None:
        async with connect(base) as conn:
            await until(conn, "session.created")
            primary.stream_break_after = 5
            done, _ = await turn(conn, "first")
            assert done.response.status == "failed"
            assert circuit(base, "llm-a")["failures"] == 1

            primary.stream_break_after = None
            primary.reply = REPLY + " and" * 30
            primary.token_delay_s = 0.2  # still writing (seconds more) when the client cancels
            for n in range(THRESHOLD):
                await text_turn_start(conn, f"cancelled {n}")
                await until(conn, "response.output_audio.delta")  # the stream is under way
                await conn.response.cancel()
                done = await until(conn, "response.done")
                assert done.response.status == "cancelled"
            state = circuit(base, "llm-a")
            assert (state["state"], state["failures"]) == ("closed", 1)

            primary.reply, primary.token_delay_s = REPLY, 0.0
            done, seen = await turn(conn, "whole")
            assert done.response.status == "completed" and spoken(seen) == REPLY
            state = circuit(base, "llm-a")
            assert (state["state"], state["failures"]) == ("closed", 0)

    asyncio.run(body())
    assert llm_calls(base, "llm-a", "cancelled") == THRESHOLD
    assert llm_calls(base, "llm-a", "transient_error") == 1
    assert llm_calls(base, "llm-a", "ok") == 1
    assert fakes["backup"].knobs.calls["llm"] == 0
