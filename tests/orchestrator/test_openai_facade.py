"""The OpenAI facade driven by real clients: the openai SDK (plain, stream) and LangChain."""

from __future__ import annotations

import httpx
import openai
import pytest

from testkit.orchestrator import all_urls, config_doc, orchestrator, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(fakes, tmp_path_factory):
    path = write_config(tmp_path_factory.mktemp("facade") / "p.yaml", config_doc(all_urls(fakes)))
    with orchestrator(path, api_keys="sk-test") as url:
        yield url


def _client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0)


def test_openai_sdk_plain_and_sessions(base, fakes):
    client = _client(base)
    r = client.chat.completions.create(
        model="text", messages=[{"role": "user", "content": "my name is ada"}], user="sdk-1"
    )
    assert r.choices[0].message.content == "[primary] seen: my name is ada"
    assert r.choices[0].finish_reason == "stop" and r.model == "text"
    assert r.usage is not None and r.usage.total_tokens == 10
    r = client.chat.completions.create(
        model="anything", messages=[{"role": "user", "content": "who am i"}], user="sdk-1"
    )
    assert r.choices[0].message.content == "[primary] seen: my name is ada | who am i"
    # Without a session the client's own history is the conversation (as with OpenAI).
    r = client.chat.completions.create(
        model="text",
        messages=[
            {"role": "system", "content": "ignored: the orchestrator owns the system prompt"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "second"}]},
        ],
    )
    assert r.choices[0].message.content == "[primary] seen: first | second"
    sent = [q for q in fakes["primary"].knobs.requests if q["endpoint"] == "llm"][-1]
    # The orchestrator's prompt, led by the session's canary (guard_output checks for it).
    system = sent["messages"][0]["content"]
    assert system.startswith("<!-- cnry-") and system.endswith(" -->\nYou are a test assistant.")
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]

    r = client.chat.completions.create(
        model="text", messages=[{"role": "user", "content": "a bomb recipe"}]
    )
    assert r.choices[0].finish_reason == "content_filter"
    assert r.choices[0].message.content == "Sorry, I can't help with that request."

    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="text", messages=[{"role": "assistant", "content": "hi"}]
        )
    assert "last message must come from the user" in str(err.value)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=base + "/v1", api_key="wrong", max_retries=0
        ).chat.completions.create(model="text", messages=[{"role": "user", "content": "x"}])
    r = httpx.post(
        base + "/v1/chat/completions",
        headers={"Authorization": "Bearer sk-test"},
        json={"model": "transcribe", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 400 and "has no llm stage" in r.json()["error"]["message"]
    r = httpx.post(
        base + "/v1/chat/completions",
        headers={"Authorization": "Bearer sk-test"},
        json={"messages": []},
    )
    assert r.status_code == 422 and r.json()["error"]["param"] == "messages"


def test_openai_sdk_stream(base):
    client = _client(base)
    stream = client.chat.completions.create(
        model="text",
        stream=True,
        extra_headers={"X-Session-ID": "stream-1"},
        messages=[{"role": "user", "content": "tell me a long story about seven small dogs"}],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "[primary] seen: tell me a long story about seven small dogs"
    assert len(chunks) >= 4 and chunks[-1].choices[0].finish_reason == "stop"
    r = client.chat.completions.create(
        model="text",
        extra_headers={"X-Session-ID": "stream-1"},
        messages=[{"role": "user", "content": "more"}],
    )
    assert r.choices[0].message.content.endswith("seven small dogs | more")


def test_langchain_client_against_the_facade(base):
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(
        base_url=base + "/v1",
        api_key="sk-test",
        model="text",  # type: ignore[arg-type]
        max_retries=0,
    )
    reply = chat.invoke("hello from langchain")
    assert reply.content == "[primary] seen: hello from langchain"
