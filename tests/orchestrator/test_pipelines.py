"""Pipelines over real HTTP against fake stage services: stages, fallbacks, breakers, errors."""

from __future__ import annotations

import base64
import re
import time

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

pytestmark = pytest.mark.slow  # starts real uvicorn servers


def _voice(base: str, **form: str) -> httpx.Response:
    return httpx.post(
        base + "/v1/voice",
        files={"file": ("a.wav", tiny_wav(), "audio/wav")},
        data=form,
        timeout=30,
    )


def test_canary_is_one_per_session_and_follows_the_key(fakes, tmp_path):
    """One canary per session (so greedy answers repeat), unguessable without ORCH_CANARY_KEY."""
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    knobs = fakes["primary"].knobs

    def canary(base: str, session: str) -> str:
        knobs.requests.clear()
        assert _voice(base, session_id=session).status_code == 200
        llm_req = next(q for q in knobs.requests if q["endpoint"] == "llm")
        found = re.match(r"<!-- (cnry-[0-9a-f]{16}) -->", llm_req["messages"][0]["content"])
        assert found is not None
        return found.group(1)

    with orchestrator(path, canary_key="k1") as base:
        first, again, other = canary(base, "s1"), canary(base, "s1"), canary(base, "s2")
    assert first == again and first != other
    with orchestrator(path, canary_key="k1") as base:
        assert canary(base, "s1") == first  # the same key: the same prompt after a restart
    with orchestrator(path, canary_key="k2") as base:
        assert canary(base, "s1") != first
    with orchestrator(path) as base:  # no key: random per process
        assert canary(base, "s1") != first


def test_voice_pipeline_runs_all_six_stages(fakes, tmp_path):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    with orchestrator(path) as base:
        r = _voice(base, session_id="s1")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["transcript"] == "what is the weather like"
        assert body["response"] == "[primary] seen: what is the weather like"
        assert body["session_id"] == "s1" and body["pipeline"] == "voice"
        assert body["blocked"] is False and body["prompt_version"] == "test-1"
        assert base64.b64decode(body["audio"]).startswith(b"RIFF")
        assert body["tts_engine"] == "primary"
        assert [s["stage"] for s in body["stages"]] == [
            "denoise",
            "stt",
            "guard_input",
            "llm",
            "guard_output",
            "tts",
        ]
        for s in body["stages"]:
            assert s["status"] == "ok" and s["attempts"] == 1 and s["latency_ms"] >= 0
            assert s["url"].startswith("http://127.0.0.1:")
        assert stage(body, "llm")["provider"] == "llm-a"
        # Stage options reach the providers: voice for TTS, temperature for the LLM.
        tts_req = next(q for q in fakes["primary"].knobs.requests if q["endpoint"] == "tts")
        assert tts_req["voice"] == "nova" and tts_req["response_format"] == "wav"
        llm_req = next(q for q in fakes["primary"].knobs.requests if q["endpoint"] == "llm")
        assert llm_req["temperature"] == 0.2
        # The system prompt carries the session's canary, which the output guard is given.
        system = llm_req["messages"][0]
        canary = re.fullmatch(
            r"<!-- (cnry-[0-9a-f]{16}) -->\nYou are a test assistant\.", system["content"]
        )
        assert system["role"] == "system" and canary is not None
        out_req = next(q for q in fakes["third"].knobs.requests if q["endpoint"] == "guard_output")
        assert out_req["canary"] == canary.group(1)
        assert out_req["input"] == "what is the weather like"

        r = httpx.post(
            base + "/v1/voice?response_format=wav",
            files={"file": ("a.wav", tiny_wav(), "audio/wav")},
            timeout=30,
        )
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
        assert r.content.startswith(b"RIFF") and r.headers["x-tts-engine"] == "primary"
        assert r.headers["x-transcript"] == "what%20is%20the%20weather%20like"
        assert len(r.headers["x-session-id"]) == 32  # created for the caller

        # A client's voice choice overrides the stage's configured voice.
        fakes["primary"].knobs.requests.clear()
        r = httpx.post(
            base + "/v1/voice",
            files={"file": ("a.wav", tiny_wav(), "audio/wav")},
            data={"voice": "onyx"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        tts_req = next(q for q in fakes["primary"].knobs.requests if q["endpoint"] == "tts")
        assert tts_req["voice"] == "onyx"

        m = httpx.get(base + "/metrics").text
        assert (
            'orchestrator_stage_requests_total{outcome="ok",pipeline="voice",'
            'provider="llm-a",stage="llm"} 3.0'
        ) in m
        assert "orchestrator_stage_latency_seconds_bucket" in m
        assert 'orchestrator_pipeline_runs_total{outcome="ok",pipeline="voice"} 3.0' in m


def test_partial_pipelines_and_bad_input(fakes, tmp_path):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    with orchestrator(path) as base:
        r = _voice(base, pipeline="transcribe")
        assert r.status_code == 200 and r.json()["transcript"] == "what is the weather like"
        assert r.json()["response"] is None and r.json()["audio"] is None
        r = ask(base, "say this", pipeline="speak", audio=True)
        assert r.status_code == 200 and base64.b64decode(r.json()["audio"]).startswith(b"RIFF")
        r = ask(base, "hello")  # active voice pipeline: audio stages skipped for text
        assert r.status_code == 200
        assert stage(r.json(), "stt") == {
            "stage": "stt",
            "provider": None,
            "url": None,
            "attempts": 0,
            "status": "skipped",
            "latency_ms": 0.0,
            "note": "text input",
        }
        assert stage(r.json(), "tts")["note"] == "audio not requested"

        r = ask(base, "hi", pipeline="nope")
        assert r.status_code == 404 and "unknown pipeline 'nope'" in r.json()["error"]["message"]
        r = ask(base, "   ")
        assert r.status_code == 400 and r.json()["error"]["param"] == "transcript"
        r = ask(base, "x" * 5000)
        assert r.status_code == 400 and "longer than 4000" in r.json()["error"]["message"]
        r = ask(base, "hi", session_id="bad id!")
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_session_id"
        r = ask(base, "hi", pipeline="transcribe")
        assert r.status_code == 400 and "only processes audio" in r.json()["error"]["message"]
        r = httpx.post(base + "/mcp/transcript", json={"session_id": "x"})
        assert r.status_code == 422 and r.json()["error"]["param"] == "transcript"
        r = _voice(base, pipeline="text")
        assert r.status_code == 400 and "cannot take audio" in r.json()["error"]["message"]
        r = httpx.post(base + "/v1/voice", files={"file": ("a.wav", b"", "audio/wav")})
        assert r.status_code == 400 and r.json()["error"]["code"] == "empty_audio"
        r = httpx.post(
            base + "/v1/voice?response_format=wav",
            data={"pipeline": "transcribe"},
            files={"file": ("a.wav", tiny_wav(), "audio/wav")},
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "no_audio_output"
        # Not audio: the STT's 415 comes back as a 415 naming the stage; no fallback tried.
        r = httpx.post(
            base + "/v1/voice",
            data={"pipeline": "transcribe"},
            files={"file": ("a.txt", b"hello, not audio", "text/plain")},
        )
        assert r.status_code == 415, r.text
        err = r.json()["error"]
        assert err["param"] == "stt" and "not a supported format" in err["message"]
        assert fakes["backup"].knobs.calls["stt"] == 0


def test_fallback_on_refused_connection_hang_and_5xx_not_on_4xx(fakes, tmp_path):
    # Only the tts stage, whose primary is made to hang, needs a short timeout; the others
    # stay roomy so a slow moment of a busy CI process is not taken for a failure.
    doc = config_doc(all_urls(fakes, **{"llm-a": dead_url()}), timeout_s=10)
    doc["pipelines"]["voice"][-1]["timeout_s"] = 0.5
    path = write_config(tmp_path / "p.yaml", doc)
    with orchestrator(path, breaker_failures=100) as base:
        r = ask(base, "hello", pipeline="text")
        assert r.status_code == 200 and r.json()["response"].startswith("[backup]")
        llm = stage(r.json(), "llm")
        assert llm["provider"] == "llm-b" and llm["attempts"] == 2
        assert llm["tried"][0]["outcome"] == "connect"

        fakes["primary"].knobs.hang = True  # tts-a hangs: bounded by its 0.5 s timeout
        started = time.perf_counter()
        r = ask(base, "hello", audio=True)
        assert r.status_code == 200 and r.json()["tts_engine"] == "backup"
        assert time.perf_counter() - started < 3
        fakes["primary"].knobs.hang = False
        tts = stage(r.json(), "tts")
        assert tts["tried"][0] == {
            "provider": "tts-a",
            "outcome": "timeout",
            "error": "timed out after 0.5s",
            "latency_ms": tts["tried"][0]["latency_ms"],
        }
        fakes["primary"].knobs.hang = False

        for status in (500, 503, 429, 408):
            fakes["primary"].knobs.status = status
            r = ask(base, "hello", audio=True)
            assert r.status_code == 200 and r.json()["tts_engine"] == "backup", status
            assert f"HTTP {status}" in stage(r.json(), "tts")["tried"][0]["error"]

        fakes["primary"].knobs.status = None
        fakes["primary"].knobs.garbage = True  # 200 with an HTML page: the provider's fault
        r = ask(base, "hello", audio=True, session_id="garbage")
        assert r.status_code == 200, r.text
        assert r.json()["tts_engine"] == "backup"
        assert stage(r.json(), "tts")["tried"][0]["outcome"] == "bad_response"
        fakes["primary"].knobs.garbage = False

        fakes["backup"].knobs.reset()
        fakes["primary"].knobs.status = 400  # the caller's fault: returned, not retried
        r = ask(base, "hello", audio=True)
        assert r.status_code == 400 and r.json()["error"]["param"] == "tts"
        assert "rejected the request (HTTP 400)" in r.json()["error"]["message"]
        assert fakes["backup"].knobs.calls["tts"] == 0
        fakes["primary"].knobs.status = 401  # our credentials: a 502, still no fallback
        r = ask(base, "hello", audio=True)
        assert r.status_code == 502 and r.json()["error"]["code"] == "stage_rejected"
        assert fakes["backup"].knobs.calls["tts"] == 0

        m = httpx.get(base + "/metrics").text
        assert 'orchestrator_fallbacks_total{pipeline="text",provider="llm-a",stage="llm"} 1.0' in m
        assert (
            'orchestrator_stage_requests_total{outcome="rejected",pipeline="voice",'
            'provider="tts-a",stage="tts"} 2.0'
        ) in m


def test_every_provider_failing_gives_502_or_504_naming_the_stage(fakes, tmp_path):
    # A roomy provider timeout for the 503 case (in a busy CI process a fake may take a
    # while to answer); only the hang case needs a short one, set on its stage.
    doc = config_doc(all_urls(fakes, **{"llm-a": dead_url()}), timeout_s=10)
    doc["pipelines"]["speak"][0]["timeout_s"] = 0.3
    path = write_config(tmp_path / "p.yaml", doc)
    with orchestrator(path, breaker_failures=100) as base:
        fakes["backup"].knobs.status = 503
        r = ask(base, "hello", pipeline="text")
        assert r.status_code == 502
        err = r.json()["error"]
        assert err["param"] == "llm" and err["code"] == "stage_failed"
        assert "stage 'llm' failed with every provider" in err["message"]
        assert "llm-a: connection failed" in err["message"]
        assert "llm-b: HTTP 503" in err["message"]
        fakes["primary"].knobs.hang = True
        fakes["backup"].knobs.hang = True
        r = ask(base, "hello", pipeline="speak", audio=True)
        assert r.status_code == 504 and r.json()["error"]["code"] == "stage_timeout"
        assert "tts-a: timed out after 0.3s; tts-b: timed out" in r.json()["error"]["message"]
        fakes["primary"].knobs.hang = fakes["backup"].knobs.hang = False


def test_circuit_opens_then_recovers(fakes, tmp_path):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    # The cool-down must outlast the calls made while the circuit is open: a 0.6 s one let a
    # loaded box (each ask ~0.7 s) reach half-open again between two asks and probe twice.
    cooldown = 4.0
    with orchestrator(path, breaker_failures=2, breaker_cooldown_s=cooldown) as base:
        fakes["primary"].knobs.status = 503
        for _ in range(2):
            assert ask(base, "hi", pipeline="text").json()["response"].startswith("[backup]")
        assert fakes["primary"].knobs.calls["llm"] == 2
        r = ask(base, "hi", pipeline="text")  # open: primary skipped without a call
        assert r.json()["response"].startswith("[backup]")
        assert fakes["primary"].knobs.calls["llm"] == 2
        assert stage(r.json(), "llm")["tried"][0]["outcome"] == "circuit_open"
        circuits = httpx.get(base + "/v1/pipelines").json()["circuits"]
        assert circuits["llm-a"]["state"] == "open"
        assert (
            'orchestrator_circuit_open{provider="llm-a"} 1.0' in httpx.get(base + "/metrics").text
        )

        time.sleep(cooldown + 0.1)  # cool-down over: one probe; it fails, the circuit reopens
        ask(base, "hi", pipeline="text")
        assert fakes["primary"].knobs.calls["llm"] == 3
        ask(base, "hi", pipeline="text")
        assert fakes["primary"].knobs.calls["llm"] == 3

        fakes["primary"].knobs.status = None
        time.sleep(cooldown + 0.1)  # the next probe succeeds and closes the circuit
        r = ask(base, "hi", pipeline="text")
        assert r.json()["response"].startswith("[primary]")
        assert httpx.get(base + "/v1/pipelines").json()["circuits"]["llm-a"]["state"] == "closed"
        assert (
            'orchestrator_circuit_open{provider="llm-a"} 0.0' in httpx.get(base + "/metrics").text
        )

        fakes["primary"].knobs.status = 503  # every provider open → fail fast with Retry-After
        fakes["backup"].knobs.status = 503
        for _ in range(2):
            ask(base, "hi", pipeline="text")
        calls = fakes["primary"].knobs.calls["llm"], fakes["backup"].knobs.calls["llm"]
        r = ask(base, "hi", pipeline="text")
        assert r.status_code == 502 and "circuit open" in r.json()["error"]["message"]
        assert int(r.headers["retry-after"]) >= 1
        assert (fakes["primary"].knobs.calls["llm"], fakes["backup"].knobs.calls["llm"]) == calls


def test_guardrails_block_redact_and_fail_modes(fakes, tmp_path):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    with orchestrator(path, refusal_message="I can't help with that.") as base:
        r = ask(base, "how do I build a bomb", pipeline="text", session_id="g1")
        body = r.json()
        assert r.status_code == 200 and body["blocked"] is True
        assert body["response"] == "I can't help with that."
        assert body["block_reason"] == "blocked word: bomb"
        assert stage(body, "llm")["note"] == "input blocked"
        assert fakes["primary"].knobs.calls["llm"] == 0
        fakes["primary"].knobs.transcript = "a bomb please"
        r = _voice(base)  # the voice reply speaks the refusal
        fakes["primary"].knobs.transcript = "what is the weather like"
        assert r.json()["blocked"] and r.json()["audio"]
        tts_req = next(q for q in fakes["primary"].knobs.requests if q["endpoint"] == "tts")
        assert tts_req["input"] == "I can't help with that."
        assert fakes["primary"].knobs.calls["llm"] == 0
        fakes["primary"].knobs.reply = "call me at 555-1234"
        r = ask(base, "number?", pipeline="text", session_id="g1")
        assert r.json()["response"] == "call me at [PHONE]" and not r.json()["blocked"]
        fakes["primary"].knobs.reply = "here is how to make a bomb"
        r = ask(base, "tell me", pipeline="text")
        assert r.json()["blocked"] and r.json()["response"] == "I can't help with that."
        fakes["primary"].knobs.reply = None
        fakes["third"].knobs.status = 503  # guardrails down, fail-closed by default
        r = ask(base, "hello", pipeline="text")
        assert r.status_code == 502 and r.json()["error"]["param"] == "guard_input"
        assert fakes["primary"].knobs.calls["llm"] == 2

    with orchestrator(path, guardrails_fail_mode="open") as base:
        r = ask(base, "hello", pipeline="text")
        assert r.status_code == 200 and r.json()["response"].startswith("[primary]")
        assert stage(r.json(), "guard_input")["status"] == "skipped"
        assert stage(r.json(), "guard_output")["status"] == "skipped"


def test_optional_stage_skipped_and_flags(fakes, tmp_path):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes, denoise=dead_url())))
    with orchestrator(path) as base:
        r = _voice(base)
        assert r.status_code == 200
        den = stage(r.json(), "denoise")
        assert den["status"] == "skipped" and "connection failed" in den["error"]
    with orchestrator(path, enable_preprocessing=False, enable_guardrails=False) as base:
        r = _voice(base)
        assert [s["stage"] for s in r.json()["stages"]] == ["stt", "llm", "tts"]
        info = httpx.get(base + "/v1/pipelines").json()
        assert info["pipelines"]["voice"]["composition"] == (
            "stt[stt-a|stt-b] > llm[llm-a|llm-b] > tts[tts-a|tts-b]"
        )


def test_sessions_are_isolated_and_bounded(fakes, tmp_path):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    with orchestrator(path, session_max_turns=2) as base:
        assert ask(base, "my name is alice", session_id="a", pipeline="text").status_code == 200
        ask(base, "my name is bob", session_id="b", pipeline="text")
        r = ask(base, "what is my name", session_id="b", pipeline="text")
        assert r.json()["response"] == ("[primary] seen: my name is bob | what is my name")
        r = ask(base, "what is my name", session_id="a", pipeline="text")
        assert "alice" in r.json()["response"] and "bob" not in r.json()["response"]
        r = ask(base, "third", session_id="a", pipeline="text")  # only 2 turns remembered
        assert r.json()["response"] == "[primary] seen: my name is alice | what is my name | third"
        r = ask(base, "fourth", session_id="a", pipeline="text")
        assert r.json()["response"] == "[primary] seen: what is my name | third | fourth"
        r = ask(base, "new", pipeline="text")  # no id: a fresh session with no history
        assert r.json()["response"] == "[primary] seen: new"
        assert r.json()["session_id"] not in ("a", "b")


def test_api_keys_and_admin(fakes, tmp_path):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    with orchestrator(path, admin_open=False) as base:
        r = httpx.post(base + "/admin/reload")
        assert r.status_code == 403 and "ADMIN_API_KEYS" in r.json()["error"]["message"]
        assert r.json()["error"]["code"] == "admin_disabled"
        assert ask(base, "hi").status_code == 200  # no keys: clients are open
    with orchestrator(path, api_keys="k1") as base:
        # ORCH_ADMIN_OPEN (on in these fixtures) is a development escape: client keys end it.
        r = httpx.post(base + "/admin/reload", headers={"Authorization": "Bearer k1"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_disabled"
    with orchestrator(path, api_keys="k1, k2", admin_api_keys="adm") as base:
        r = ask(base, "hi")
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
        r = httpx.post(
            base + "/mcp/transcript",
            json={"transcript": "hi"},
            headers={"Authorization": "Bearer nope"},
        )
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        ok = {"Authorization": "Bearer k2"}
        assert (
            httpx.post(base + "/mcp/transcript", json={"transcript": "hi"}, headers=ok).status_code
            == 200
        )
        assert httpx.post(base + "/admin/reload").status_code == 401
        # A client key is not an admin key.
        assert httpx.post(base + "/admin/reload", headers=ok).status_code == 401
        adm = {"Authorization": "Bearer adm"}
        assert httpx.post(base + "/admin/reload", headers=adm).json()["reloaded"] is True
        assert httpx.get(base + "/health/ready").status_code == 200  # probes stay open


def test_bad_config_at_startup_reports_not_ready(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("active_pipeline: x\n")
    from services.orchestrator.app import build_app
    from services.orchestrator.settings import Settings
    from testkit.helpers import run_server

    app = build_app(Settings(pipelines_path=str(path), reload_poll_s=0))
    with run_server(app, ready_path="/health/live") as base:
        for _ in range(50):
            r = httpx.get(base + "/health/ready")
            if "startup failed" in r.text:
                break
            time.sleep(0.05)
        assert r.status_code == 503 and "providers: Field required" in r.json()["reason"]
        r = ask(base, "hi")
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        r = httpx.get(base + "/v1/pipelines")
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"


def test_llm_reply_that_is_not_a_chat_completion_fails_over(fakes, tmp_path):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    with orchestrator(path) as base:
        fakes["primary"].knobs.garbage = True
        r = ask(base, "hello", pipeline="text")
        assert r.status_code == 200, r.text
        assert r.json()["response"].startswith("[backup]")
        tried = stage(r.json(), "llm")["tried"][0]
        assert tried["provider"] == "llm-a" and tried["outcome"] == "bad_response"


def test_queue_full_429_fails_over_but_never_opens_the_circuit(fakes, tmp_path):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    with orchestrator(path, breaker_failures=2, breaker_cooldown_s=30) as base:
        fakes["primary"].knobs.status = 429
        for _ in range(4):  # twice the threshold: a busy provider is still a live one
            assert ask(base, "hi", pipeline="text").json()["response"].startswith("[backup]")
        assert fakes["primary"].knobs.calls["llm"] == 4
        assert httpx.get(base + "/v1/pipelines").json()["circuits"]["llm-a"]["state"] == "closed"
        fakes["primary"].knobs.status = None
        assert ask(base, "hi", pipeline="text").json()["response"].startswith("[primary]")
