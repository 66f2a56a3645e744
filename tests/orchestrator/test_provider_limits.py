"""Provider replies are read up to a cap; guard calls carry the history and the end user."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from testkit.helpers import run_server
from testkit.orchestrator import all_urls, ask, config_doc, orchestrator, stage, write_config


def _flooding_llm(mode: str, size: int) -> FastAPI:
    """A chat server whose replies are far too big: declared up front, or streamed unsized."""
    app = FastAPI()
    big = json.dumps(
        {"choices": [{"message": {"role": "assistant", "content": "x" * size}}]}
    ).encode()

    async def endless(request: Request) -> AsyncIterator[bytes]:
        yield b'{"choices": [{"message": {"role": "assistant", "content": "'
        # Far past any cap (64 MiB), yet bounded, and it stops when the reader hangs up: an
        # unbounded generator kept a server thread spinning (GIL held) for the rest of the
        # test session after the orchestrator dropped the connection, slowing every later test.
        for _ in range(1024):
            if await request.is_disconnected():
                return
            yield b"x" * 65_536

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        if mode == "sized":
            return Response(big, media_type="application/json")
        return StreamingResponse(endless(request), media_type="application/json")

    return app


@pytest.mark.parametrize("client", ["http", "langchain"])
def test_oversize_replies_fail_over_to_the_fallback(fakes, tmp_path, client):
    for mode in ("sized", "endless"):
        with run_server(_flooding_llm(mode, 200_000), ready_path="/docs") as flood:
            doc = config_doc(all_urls(fakes, **{"llm-a": flood}), timeout_s=10)
            path = write_config(tmp_path / f"{mode}.yaml", doc)
            settings = {"max_reply_json_bytes": 65_536, "llm_client": client}
            with orchestrator(path, **settings) as base:
                r = ask(base, "hello", pipeline="text")
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["response"].startswith("[backup]")
                tried = stage(body, "llm")["tried"]
                assert tried[0]["provider"] == "llm-a"
                if client == "http":
                    assert tried[0]["outcome"] == "too_large"
                    assert "65536" in tried[0]["error"]
                else:
                    # Through LangChain the SDK reports the capped read as a connection
                    # error: still a transient failure, so the fallback answers — within
                    # the cap, not after reading an endless reply until the timeout.
                    assert tried[0]["outcome"] == "connect", tried[0]
                    assert tried[0]["latency_ms"] < 9_000, tried[0]


def test_oversize_audio_is_refused_too(fakes, tmp_path):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    # The fakes' WAV (0.1 s, 3,244 bytes) is over a 2 kB audio cap: both TTS providers fail.
    with orchestrator(path, max_reply_audio_bytes=2048) as base:
        r = ask(base, "hello", pipeline="voice", audio=True)
        assert r.status_code == 502 and r.json()["error"]["param"] == "tts"
        assert "limit of 2048" in r.json()["error"]["message"]


def test_guard_gets_every_client_message_and_the_end_user_in_one_call(fakes, tmp_path):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    guard = fakes["third"].knobs
    with orchestrator(path, api_keys="k1") as base:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "first"}]},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "second"},
        ]
        r = httpx.post(
            base + "/v1/chat/completions",
            json={"messages": messages},
            headers={"Authorization": "Bearer k1"},
            timeout=30,
        )
        assert r.status_code == 200
        calls = [q for q in guard.requests if q["endpoint"] == "guard_input"]
        assert len(calls) == 1  # one guard call per turn, whatever the history's length
        assert calls[0]["text"] == "second"
        assert calls[0]["history"] == [
            {"role": "system", "text": "be brief"},
            {"role": "user", "text": "first"},
            {"role": "assistant", "text": "ok"},
        ]
        seen = guard.end_users[-1]
        assert seen.startswith("key-") and "k1" not in seen  # an id of the key, not the key


def test_a_guard_that_ignores_history_fails_closed(fakes, tmp_path):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    fakes["third"].knobs.checks_history = False  # a guardrails from before `history`
    with orchestrator(path) as base:
        messages = [{"role": "user", "content": "bomb"}, {"role": "user", "content": "hi"}]
        r = httpx.post(base + "/v1/chat/completions", json={"messages": messages}, timeout=30)
        assert r.status_code == 502 and r.json()["error"]["param"] == "guard_input"
        assert "did not check" in r.json()["error"]["message"]
        # A request without history needs no such promise and still runs.
        ok = httpx.post(
            base + "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        assert ok.status_code == 200 and ok.json()["orchestrator"]["blocked"] is False
