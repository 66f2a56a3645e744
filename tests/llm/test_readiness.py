"""Readiness is the engine's own self-check, through the one loader path (fake engines)."""

from __future__ import annotations

import time

import httpx
import openai

from services.llm.app import build_app
from services.llm.settings import Settings
from testkit.fakes.llm import WordEngine
from testkit.helpers import run_server
from testkit.llm import CHAT, USER, wait_startup_failed


def test_engine_that_passes_its_self_check_serves() -> None:
    app = build_app(Settings(model="fake"), engine_factory=lambda _s: WordEngine())
    with run_server(app) as url:
        ready = httpx.get(url + "/health/ready").json()
        assert ready["engine"] == "fake" and ready["model"] == "fake-1"
        assert ready["kind"] == "causal" and ready["self_check_ms"] >= 0
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        reply = client.chat.completions.create(model="x", messages=USER, max_tokens=8)
        assert reply.choices[0].message.content == "Hello there."
        assert [m.id for m in client.models.list().data] == ["fake-1"]


def test_engine_that_generates_nothing_is_not_ready() -> None:
    app = build_app(Settings(model="fake"), engine_factory=lambda _s: WordEngine(words=()))
    with run_server(app, ready_path="/health/live") as url:
        ready = wait_startup_failed(url)
        assert ready.status_code == 503
        assert "ModelUnavailableError: self-check generated no tokens" in ready.json()["reason"]
        for r in (httpx.get(url + "/v1/models"), httpx.post(url + CHAT, json={"messages": USER})):
            assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"


def test_load_past_the_timeout_is_not_ready() -> None:
    def slow(_settings: Settings) -> WordEngine:
        time.sleep(1.0)
        return WordEngine()

    app = build_app(Settings(model="fake", load_timeout_s=0.1), engine_factory=slow)
    with run_server(app, ready_path="/health/live") as url:
        reason = wait_startup_failed(url).json()["reason"]
        assert "LLM_LOAD_TIMEOUT_S=0.1" in reason, reason
