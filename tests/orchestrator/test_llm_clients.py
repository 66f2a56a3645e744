"""Both LLM clients (plain HTTP, LangChain ChatOpenAI) send the same request and fail over alike."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from services.orchestrator.backends import open_llm_client
from services.orchestrator.backends.llm import LlmCall, LlmClient, answer
from services.orchestrator.config import ProviderConfig
from services.orchestrator.executor import classify
from services.orchestrator.stages import StageClient, make_session
from testkit.fakes.stages import Knobs, tiny_wav
from testkit.helpers import SMOLLM2_CT2, run_server
from testkit.orchestrator import (
    all_urls,
    ask,
    config_doc,
    dead_url,
    orchestrator,
    stage,
    write_config,
)

CLIENTS = ["http", "langchain"]


def _ask(base: str, text: str, session_id: str = "s1") -> httpx.Response:
    return ask(base, text, pipeline="text", session_id=session_id)


@pytest.mark.parametrize("client", CLIENTS)
def test_request_shape_history_and_usage(fakes, tmp_path, client):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    with orchestrator(path, llm_client=client) as base:
        assert _ask(base, "first question").status_code == 200
        r = _ask(base, "second question")
        assert r.status_code == 200, r.text
        assert r.json()["response"] == "[primary] seen: first question | second question"
        sent = [q for q in fakes["primary"].knobs.requests if q["endpoint"] == "llm"][-1]
        assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
        # The orchestrator's prompt, led by the session's canary (guard_output checks for it).
        system = sent["messages"][0]["content"]
        assert system.startswith("<!-- cnry-") and system.endswith(
            " -->\nYou are a test assistant."
        )
        assert sent["temperature"] == 0.2  # the stage's options reach the provider
        assert sent["model"] == "default" and not sent.get("stream")
        chat = httpx.post(
            base + "/v1/chat/completions",
            json={"model": "text", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        ).json()
        assert chat["usage"]["completion_tokens"] == 3  # the provider's usage is passed on


@pytest.mark.parametrize("client", CLIENTS)
def test_transient_failures_fail_over_and_4xx_does_not(fakes, tmp_path, client):
    doc = config_doc(all_urls(fakes, **{"llm-a": dead_url()}))
    with orchestrator(write_config(tmp_path / "p.yaml", doc), llm_client=client) as base:
        r = _ask(base, "hello")
        assert r.status_code == 200 and r.json()["response"].startswith("[backup]")
        assert stage(r.json(), "llm")["tried"][0]["outcome"] == "connect"

    path = write_config(tmp_path / "q.yaml", config_doc(all_urls(fakes)))
    with orchestrator(path, llm_client=client, breaker_failures=100) as base:
        primary = fakes["primary"].knobs
        for knob, outcome in (("status", "status"), ("garbage", "bad_response"), ("empty", "")):
            primary.reset()
            if knob == "status":
                primary.status = 503
            elif knob == "garbage":
                primary.garbage = True
            else:
                primary.reply = "   "  # a blank answer is useless: try the next provider
                outcome = "bad_response"
            r = _ask(base, "hello", session_id=knob)
            assert r.status_code == 200, (knob, r.text)
            assert r.json()["response"].startswith("[backup]"), knob
            assert stage(r.json(), "llm")["tried"][0]["outcome"] == outcome, knob
        primary.reset()
        primary.reply = None
        fakes["backup"].knobs.reset()
        primary.status = 400
        r = _ask(base, "hello", session_id="rejected")
        assert r.status_code == 400 and r.json()["error"]["param"] == "llm"
        assert fakes["backup"].knobs.calls["llm"] == 0


@pytest.mark.parametrize("client", CLIENTS)
def test_request_id_reaches_every_stage(fakes, tmp_path, client):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    with orchestrator(path, llm_client=client) as base:
        r = httpx.post(
            base + "/v1/voice",
            files={"file": ("q.wav", tiny_wav(0.5), "audio/wav")},
            data={"session_id": "rid"},
            headers={"X-Request-ID": "trace-42"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        assert r.headers["X-Request-ID"] == "trace-42"
        seen = [*fakes["primary"].knobs.request_ids, *fakes["third"].knobs.request_ids]
        assert sorted(e for e, _ in seen) == [
            "denoise",
            "guard_input",
            "guard_output",
            "llm",
            "stt",
            "tts",
        ]
        assert {rid for _, rid in seen} == {"trace-42"}


@contextlib.asynccontextmanager
async def _client(kind: str) -> AsyncIterator[LlmClient]:
    session = make_session()
    llm = await open_llm_client(
        kind,  # type: ignore[arg-type]
        StageClient(session),
        timeout_s=5.0,
        max_reply_bytes=1_048_576,
        balancer=None,
    )
    try:
        yield llm
    finally:
        await llm.aclose()
        await session.close()


def _call(url: str, tools: tuple[str, ...] = ()) -> LlmCall:
    config = ProviderConfig(capability="llm", url=url, supports_tools=bool(tools))
    return LlmCall(config, {"temperature": 0.2}, tools, 5.0)


MESSAGES = [{"role": "system", "content": "terse"}, {"role": "user", "content": "hi"}]


async def _aborted(knobs: Knobs) -> int:
    for _ in range(100):  # the fake sees the connection go a moment after the client drops it
        if knobs.streams_aborted:
            break
        await asyncio.sleep(0.02)
    return knobs.streams_aborted


@pytest.mark.parametrize("kind", CLIENTS)
async def test_both_clients_stream_alike_and_closing_stops_the_provider(fakes, kind):
    knobs = fakes["primary"].knobs
    knobs.reply = "one two three four five six"
    async with _client(kind) as llm:
        assert llm.name == kind
        stream = await llm.chat_stream(_call(fakes["primary"].url), MESSAGES)
        assert "".join([piece async for piece in stream]) == "one two three four five six"
        await stream.aclose()
        sent = [q for q in knobs.requests if q["endpoint"] == "llm"][-1]
        assert sent["stream"] is True and sent["temperature"] == 0.2
        assert [m["role"] for m in sent["messages"]] == ["system", "user"]

        knobs.token_delay_s = 0.1
        stream = await llm.chat_stream(_call(fakes["primary"].url), MESSAGES)
        pieces = stream.__aiter__()
        assert [await anext(pieces), await anext(pieces)] == ["one", " two"]
        await stream.aclose()
        assert await _aborted(knobs) == 1
    knobs.reply = None  # reset() keeps it; the other tests here want the echo


@pytest.mark.parametrize("kind", CLIENTS)
async def test_both_clients_fail_in_ways_the_executor_classifies_alike(fakes, kind):
    knobs = fakes["primary"].knobs
    async with _client(kind) as llm:
        call = _call(fakes["primary"].url)
        seen = []
        for knob in ("status", "garbage", "blank"):
            knobs.reset()
            knobs.status = 503 if knob == "status" else None
            knobs.garbage = knob == "garbage"
            knobs.reply = "   " if knob == "blank" else None
            requests = [llm.chat(call, MESSAGES)]
            if knob != "blank":  # streamed, whitespace is a piece like any other
                requests.append(llm.chat_stream(call, MESSAGES))
            for request in requests:
                with pytest.raises(Exception) as caught:  # any kind: classified below
                    await request
                failure = classify(caught.value)
                assert failure is not None and failure.transient, (knob, caught.value)
                seen.append((knob, failure.kind, failure.status))
        knobs.reply = None
        assert seen == [
            ("status", "status", 503),
            ("status", "status", 503),
            ("garbage", "bad_response", None),
            ("garbage", "bad_response", None),
            ("blank", "bad_response", None),
        ]


@pytest.mark.parametrize("kind", CLIENTS)
async def test_tool_rounds_run_on_either_client(fakes, kind):
    knobs = fakes["primary"].knobs
    knobs.tool_calls = (("calculate", '{"expression": "6 * 7"}'),)
    used: list[tuple[str, bool]] = []
    async with _client(kind) as llm:
        call = _call(fakes["primary"].url, tools=("calculate",))
        reply = await answer(llm, call, MESSAGES, 3, lambda name, ok: used.append((name, ok)))
        assert reply.text.endswith("tools said: 42") and reply.tools_called == ["calculate"]
        assert reply.usage == {"prompt_tokens": 14, "completion_tokens": 6, "total_tokens": 20}
    assert used == [("calculate", True)]
    first, second = [q for q in knobs.requests if q["endpoint"] == "llm"]
    assert first["tool_choice"] == "auto" and first["tools"][0]["function"]["name"] == "calculate"
    assert second["messages"][-1]["role"] == "tool" and second["messages"][-1]["content"] == "42"


@pytest.fixture(scope="module")
def smollm2_url() -> Iterator[str]:
    """The real LLM service on the offline SmolLM2 (CTranslate2), in this process."""
    from services.llm.app import build_app
    from services.llm.settings import Settings

    if not (SMOLLM2_CT2 / "model.bin").is_file():
        pytest.fail(f"{SMOLLM2_CT2} is missing: run scripts/prepare_models.py")
    with run_server(build_app(Settings(model=str(SMOLLM2_CT2))), timeout=600) as url:
        yield url


@pytest.mark.slow
@pytest.mark.parametrize("kind", CLIENTS)
async def test_both_clients_stream_the_real_llm_service(smollm2_url, kind):
    """Our own SSE, read by the plain parser and by LangChain's astream, gives the same text."""
    call = LlmCall(
        ProviderConfig(capability="llm", url=smollm2_url),
        {"max_tokens": 24, "temperature": 0},
        (),
        120.0,
    )
    question = [
        {"role": "system", "content": "Answer in one short sentence."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    async with _client(kind) as llm:
        stream = await llm.chat_stream(call, question)
        pieces = [piece async for piece in stream]
        await stream.aclose()
        whole = await answer(llm, call, question, 0)
    assert len(pieces) > 1 and "paris" in "".join(pieces).lower()
    assert "".join(pieces).strip() == whole.text  # greedy: streamed and whole replies agree
    assert whole.usage["completion_tokens"] > 0
