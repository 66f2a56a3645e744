"""Pipeline YAML: expansion, validation, flags and the shipped config/pipelines.yaml."""

from __future__ import annotations

import pytest
import yaml

from services.orchestrator.config import ConfigError, Flags, expand_env, parse_config
from testkit.helpers import ROOT
from testkit.orchestrator import config_doc

URLS = {
    "denoise": "http://d",
    "stt-a": "http://s",
    "stt-b": "http://s2",
    "guard": "http://g",
    "llm-a": "http://l",
    "llm-b": "",
    "tts-a": "http://t",
    "tts-b": "http://t2",
}


def test_env_expansion_follows_compose_rules():
    env = {"SET": "x", "EMPTY": ""}
    assert expand_env("${SET:-d}", env) == "x"
    assert expand_env("${EMPTY:-d}", env) == "d"
    assert expand_env("${EMPTY-d}", env) == ""
    assert expand_env("${UNSET-d}", env) == "d"
    assert expand_env("${UNSET}", env) == ""
    assert expand_env({"a": ["u=${SET}/v1"]}, env) == {"a": ["u=x/v1"]}


def test_shipped_config_is_valid_and_follows_env():
    text = (ROOT / "config" / "pipelines.yaml").read_text()
    loaded = parse_config(text, {}, Flags())
    voice = loaded.pipelines["voice"]
    assert [s.stage for s in voice.stages] == [
        "denoise",
        "stt",
        "guard_input",
        "llm",
        "guard_output",
        "tts",
    ]
    llm = next(s for s in voice.stages if s.stage == "llm")
    assert llm.providers == ("llm-primary",)  # LLM_FALLBACK_URL unset → disabled
    env = {
        "LLM_FALLBACK_URL": "https://api.example.com/v1",
        "LLM_FALLBACK_API_KEY": "k",
        "STT_URL": "http://127.0.0.1:9010",
    }
    loaded = parse_config(text, env, Flags())
    llm = next(s for s in loaded.pipelines["text"].stages if s.stage == "llm")
    assert llm.providers == ("llm-primary", "llm-fallback")
    assert loaded.file.providers["llm-fallback"].api_key == "k"
    assert loaded.file.providers["stt-local"].url == "http://127.0.0.1:9010"
    assert not loaded.pipelines["transcribe"].has("llm")


def test_flags_drop_stages():
    text = yaml.safe_dump(config_doc(URLS))
    loaded = parse_config(text, {}, Flags(enable_preprocessing=False, enable_guardrails=False))
    assert [s.stage for s in loaded.pipelines["voice"].stages] == ["stt", "llm", "tts"]
    assert "denoise (ENABLE_PREPROCESSING=false)" in loaded.pipelines["voice"].dropped
    opened = parse_config(text, {}, Flags(guardrails_fail_open=True))
    guard = opened.pipelines["text"].stages[0]
    assert guard.stage == "guard_input" and guard.optional


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(active_pipeline="nope"), "active_pipeline 'nope' is not a pipeline"),
        (
            lambda d: d["pipelines"]["text"][1].update(providers=["ghost"]),
            "unknown provider 'ghost'",
        ),
        (
            lambda d: d["pipelines"]["text"][1].update(providers=["tts-a"]),
            "provider 'tts-a' has capability tts, needs llm",
        ),
        (lambda d: d["pipelines"]["text"].reverse(), "stages must be unique and in the order"),
        (
            lambda d: d["pipelines"]["text"][1].update(options={"temprature": 1}),
            "unknown option(s) ['temprature']",
        ),
        (lambda d: d["providers"]["llm-a"].update(timeout_s=-1), "greater than 0"),
        (lambda d: d["providers"]["llm-a"].update(colour="red"), "Extra inputs"),
        (lambda d: d["pipelines"]["text"][1].update(stage="llama"), "pipelines.text.1.stage"),
    ],
)
def test_invalid_documents_are_rejected_with_the_reason(mutate, message):
    doc = config_doc(URLS)
    mutate(doc)
    with pytest.raises(ConfigError) as err:
        parse_config(yaml.safe_dump(doc), {}, Flags())
    assert message in str(err.value)


def test_empty_urls_disable_providers_and_pipelines():
    urls = dict(URLS, **{"llm-a": ""})
    doc = config_doc(urls, active="transcribe")
    loaded = parse_config(yaml.safe_dump(doc), {}, Flags())
    assert loaded.pipelines["text"].unavailable == "stage llm: none of ['llm-a', 'llm-b'] has a URL"
    with pytest.raises(ConfigError, match="active pipeline 'voice' is unusable"):
        parse_config(yaml.safe_dump(config_doc(urls)), {}, Flags())
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("a: [", {}, Flags())
