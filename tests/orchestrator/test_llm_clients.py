"""Both LLM clients (plain HTTP, LangChain ChatOpenAI) send the same request and fail over alike."""

from __future__ import annotations

import httpx
import pytest

from testkit.fakes.stages import tiny_wav
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
        # The orchestrator's prompt, led by the request's canary (guard_output checks for it).
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
