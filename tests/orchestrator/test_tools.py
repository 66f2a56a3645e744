"""Tool calling: offered only to providers that support it, run by the orchestrator, bounded."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import yaml

from services.orchestrator.config import ConfigError, Flags, parse_config
from services.orchestrator.tools import run_tool
from testkit.orchestrator import all_urls, ask, config_doc, orchestrator, stage, write_config

CLIENTS = ["http", "langchain"]


def _doc(fakes: Any, tools_on: tuple[str, ...] = ("llm-a",)) -> dict[str, Any]:
    doc = config_doc(all_urls(fakes))
    for name in tools_on:
        doc["providers"][name]["supports_tools"] = True
    doc["pipelines"]["text"][1]["tools"] = ["calculate", "current_time"]
    return doc


def _llm_requests(fake: Any) -> list[dict[str, Any]]:
    return [q for q in fake.knobs.requests if q["endpoint"] == "llm"]


@pytest.mark.parametrize("client", CLIENTS)
def test_a_tool_call_is_run_and_its_result_reaches_the_reply(fakes, tmp_path, client):
    fakes["primary"].knobs.tool_calls = (
        ("calculate", json.dumps({"expression": "(17 + 25) * 3"})),
    )
    path = write_config(tmp_path / "p.yaml", _doc(fakes))
    with orchestrator(path, llm_client=client) as base:
        r = ask(base, "what is 17 plus 25, times 3?", pipeline="text", session_id="t1")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["response"].endswith("tools said: 126")
        assert stage(body, "llm")["tools_called"] == ["calculate"]
        first, second = _llm_requests(fakes["primary"])
        offered = {t["function"]["name"] for t in first["tools"]}
        assert offered == {"calculate", "current_time"} and first["tool_choice"] == "auto"
        roles = [m["role"] for m in second["messages"]]
        assert roles == ["system", "user", "assistant", "tool"]
        assert second["messages"][2]["tool_calls"][0]["function"]["name"] == "calculate"
        assert second["messages"][3]["content"] == "126"
        assert second["temperature"] == 0.2  # stage options still sent with tools
        m = httpx.get(base + "/metrics").text
        assert 'orchestrator_tool_calls_total{outcome="ok",tool="calculate"} 1.0' in m
        llm = httpx.get(base + "/v1/pipelines").json()["pipelines"]["text"]["stages"][1]
        assert llm["tools"] == ["calculate", "current_time"]
        assert [p["supports_tools"] for p in llm["providers"]] == [True, False]
        # The session history keeps the question and the answer, not the tool round.
        ask(base, "and again?", pipeline="text", session_id="t1")
        third = _llm_requests(fakes["primary"])[-1]
        assert [m["role"] for m in third["messages"][:4]] == ["system", "user", "assistant", "user"]


@pytest.mark.parametrize("client", CLIENTS)
def test_a_provider_without_tool_support_is_never_offered_tools(fakes, tmp_path, client):
    fakes["primary"].knobs.status = 503  # fail over to llm-b, which lacks supports_tools
    fakes["backup"].knobs.tool_calls = (("calculate", '{"expression": "1+1"}'),)
    path = write_config(tmp_path / "p.yaml", _doc(fakes))
    with orchestrator(path, llm_client=client) as base:
        r = ask(base, "hello", pipeline="text")
        assert r.status_code == 200, r.text
        assert r.json()["response"] == "[backup] seen: hello"
        sent = _llm_requests(fakes["backup"])[-1]
        assert "tools" not in sent and "tool_choice" not in sent
        assert "tools_called" not in stage(r.json(), "llm")


@pytest.mark.parametrize("client", CLIENTS)
def test_tool_rounds_are_bounded_and_bad_calls_come_back_as_errors(fakes, tmp_path, client):
    knobs = fakes["primary"].knobs
    knobs.tool_calls = (("current_time", '{"timezone": "Mars/Olympus"}'), ("rm_rf", "{}"))
    knobs.tool_calls_always = True  # a model that never stops asking
    path = write_config(tmp_path / "p.yaml", _doc(fakes))
    with orchestrator(path, llm_client=client, max_tool_rounds=2) as base:
        r = ask(base, "what time is it on Mars?", pipeline="text")
        assert r.status_code == 200, r.text
        assert stage(r.json(), "llm")["tools_called"] == ["current_time", "rm_rf"] * 2
        sent = _llm_requests(fakes["primary"])
        assert [q["tool_choice"] for q in sent] == ["auto", "auto", "none"]
        results = [m["content"] for m in sent[-1]["messages"] if m["role"] == "tool"]
        assert results[0].startswith("error: unknown timezone 'Mars/Olympus'")
        assert results[1].startswith("error: no tool named 'rm_rf'")
        m = httpx.get(base + "/metrics").text
        assert 'orchestrator_tool_calls_total{outcome="error",tool="current_time"} 2.0' in m


def test_tools_are_validated_at_config_load(fakes):
    doc = _doc(fakes)
    doc["pipelines"]["text"][1]["tools"] = ["calculate", "launch_missiles"]
    doc["pipelines"]["text"][0]["tools"] = ["calculate"]
    with pytest.raises(ConfigError) as err:
        parse_config(yaml.safe_dump(doc), {}, Flags())
    assert "unknown tool(s) ['launch_missiles']" in str(err.value)
    assert "stage guard_input: only llm takes tools" in str(err.value)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("(17 + 25) * 3", "126"),
        ("2 ^ 10", "1024"),
        ("7 / 2", "3.5"),
        ("-3 ** 2", "-9"),
        ("1 / 0", "error: division by zero"),
        ("9 ** 9 ** 9", "error: exponent larger than 1000"),
        ("__import__('os').system('true')", "error: only numbers"),
        ("1e308 * 10", "error: the result is too large"),
        ("(-8) ** 0.5", "error: the result is not a real number"),
        ("", "error: expression must be a non-empty string"),
    ],
)
def test_calculate(expression, expected):
    out = run_tool("calculate", json.dumps({"expression": expression}), ("calculate",))
    assert out.startswith(expected), out


def test_current_time_and_argument_errors():
    out = run_tool("current_time", '{"timezone": "Europe/Paris"}', ("current_time",))
    assert "(Europe/Paris, 20" in out and ("+01:00" in out or "+02:00" in out)
    assert "(UTC, " in run_tool("current_time", None, ("current_time",))
    assert run_tool("current_time", "{not json", ("current_time",)).startswith("error: ")
    assert run_tool("current_time", "[1, 2]", ("current_time",)).startswith("error: ")
    assert run_tool("calculate", "{}", ("current_time",)).startswith("error: no tool named")


def test_client_supplied_tools_on_the_facade_are_refused(fakes, tmp_path):
    from openai import BadRequestError, OpenAI

    path = write_config(tmp_path / "p.yaml", _doc(fakes))
    with orchestrator(path) as base:
        client = OpenAI(base_url=base + "/v1", api_key="x", max_retries=0)
        fn = {"name": "lookup", "parameters": {"type": "object", "properties": {}}}
        with pytest.raises(BadRequestError) as err:
            client.chat.completions.create(
                model="text",
                messages=[{"role": "user", "content": "hi"}],
                tools=[{"type": "function", "function": fn}],
            )
        assert err.value.code == "tools_not_supported"
        assert _llm_requests(fakes["primary"]) == []
