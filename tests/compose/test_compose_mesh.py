"""Acceptance test of `make compose-up`: the offline mesh in containers, as a user gets it.

Traffic goes only to the published ports on 127.0.0.1 and, inside, between the project's
own containers on its compose network. Offline there are no Bark weights: tts-bark answers
503 not_ready and is the primary TTS provider, tts-piper the orchestrator's fallback, so every
turn goes down the orchestrator's fallback path, and killing tts-bark loses nothing.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from services.kit.audio import decode_audio
from testkit.docker import PROJECT, ComposeMesh, run
from testkit.helpers import synth_speech, wav_bytes, wer, with_pauses

pytestmark = [pytest.mark.compose, pytest.mark.slow]

ORCH = "http://127.0.0.1:8220"
QUESTION = "What is the capital of France?"
# What the base file publishes; everything else stays on the compose network.
PUBLISHED = {
    "orchestrator": 8220,
    "testing-ui": 8080,
    "monitoring-dashboard": 8501,
    "prometheus": 9090,
}


def _ps(mesh: ComposeMesh, *args: str) -> list[dict]:
    """`compose ps` rows (one JSON object per line, or one array from older releases)."""
    out = mesh.compose("ps", *args, "--format", "json").stdout.strip()
    if out.startswith("["):
        return list(json.loads(out))
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _client(mesh: ComposeMesh) -> httpx.Client:
    return httpx.Client(
        base_url=ORCH, timeout=120, headers={"Authorization": f"Bearer {mesh.api_key}"}
    )


def _tts_turn(client: httpx.Client, i: int) -> httpx.Response:
    return client.post(
        "/mcp/transcript",
        json={"transcript": f"Please say the number {i}.", "session_id": f"c-{i}", "audio": True},
    )


def _tts_provider(r: httpx.Response) -> str:
    stage = next(s for s in r.json()["stages"] if s["stage"] == "tts")
    assert stage["status"] == "ok", stage
    return str(stage["provider"])


def _bark_refused_or_skipped(r: httpx.Response) -> bool:
    """tts-primary (Bark) was tried first and said 503, or its open breaker skipped it."""
    stage = next(s for s in r.json()["stages"] if s["stage"] == "tts")
    first = stage["tried"][0]
    return first["provider"] == "tts-primary" and (
        first["outcome"] == "circuit_open" or "HTTP 503" in str(first.get("error"))
    )


def test_every_service_is_healthy_by_its_compose_healthcheck(compose_mesh: ComposeMesh):
    rows = _ps(compose_mesh, "--all")
    states = {r["Service"]: (r["State"], r.get("Health", "")) for r in rows}
    expected = {
        "audio-preprocessor", "stt", "llm-flan", "tts-piper", "tts-bark", "guardrails",
        "orchestrator", "testing-ui", "monitoring-dashboard", "prometheus",
    }  # fmt: skip
    assert set(states) == expected, states
    assert all(s == ("running", "healthy") for s in states.values()), states


def test_only_the_views_are_published_and_only_on_loopback(compose_mesh: ComposeMesh):
    for row in _ps(compose_mesh):
        published = [p for p in row.get("Publishers") or [] if p.get("PublishedPort")]
        if row["Service"] in PUBLISHED:
            assert {p["PublishedPort"] for p in published} == {PUBLISHED[row["Service"]]}, row
            assert all(p["URL"] in ("127.0.0.1", "") for p in published), published
        else:
            assert not published, row


@pytest.mark.parametrize("image", ["llm", "tts-bark", "guardrails"])
def test_cpu_images_carry_cpu_torch_and_no_cuda_libraries(compose_mesh: ComposeMesh, image: str):
    probe = (
        "import importlib.util, torch; "
        "print(torch.__version__, torch.version.cuda, importlib.util.find_spec('nvidia'))"
    )
    out = run(
        ["docker", "run", "--rm", f"{PROJECT}/{image}:latest", "python", "-c", probe],
        compose_mesh.env,
    ).stdout.split()
    assert out[0].endswith("+cpu") and out[1:] == ["None", "None"], out


def test_the_orchestrator_refuses_requests_without_a_key(compose_mesh: ComposeMesh):
    r = httpx.post(ORCH + "/mcp/transcript", json={"transcript": "hi"}, timeout=30)
    assert r.status_code == 401, r.text


def test_spoken_question_through_v1_voice(compose_mesh: ComposeMesh):
    clean, rate = synth_speech(QUESTION)
    with _client(compose_mesh) as client:
        start = time.monotonic()
        r = client.post(
            "/v1/voice",
            # Pauses around the question: the denoise gate measures the noise in them.
            files={"file": ("q.wav", wav_bytes(with_pauses(clean, rate), rate), "audio/wav")},
            data={"session_id": "compose-voice"},
        )
        compose_mesh.timings["voice_turn_s"] = round(time.monotonic() - start, 2)
    assert r.status_code == 200, r.text
    body = r.json()
    assert wer(QUESTION, body["transcript"]) <= 0.2, body["transcript"]
    assert [s["stage"] for s in body["stages"]] == [
        "denoise", "stt", "guard_input", "llm", "guard_output", "tts",
    ]  # fmt: skip
    assert all(s["status"] == "ok" for s in body["stages"]), body["stages"]
    assert "paris" in body["response"].lower(), body["response"]
    reply = base64.b64decode(body["audio"])
    assert reply[:4] == b"RIFF" and decode_audio(reply).duration_s > 0.5


def test_unready_bark_falls_over_to_piper_on_every_turn_even_when_killed(
    compose_mesh: ComposeMesh,
):
    with _client(compose_mesh) as client:
        first = _tts_turn(client, 0)
        assert _tts_provider(first) == "tts-fallback" and _bark_refused_or_skipped(first)
        bark = compose_mesh.container("tts-bark")
        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(_tts_turn, client, i) for i in range(1, 10)]
            time.sleep(1.0)
            killed = time.monotonic()
            run(["docker", "kill", bark], compose_mesh.env)  # SIGKILL while turns are in flight
            results = [f.result() for f in futures]
        assert [r.status_code for r in results] == [200] * 9, [r.text[:200] for r in results]
        assert all(r.json()["audio"] for r in results)
        after = [_tts_provider(_tts_turn(client, 100 + i)) for i in range(3)]
        assert after == ["tts-fallback"] * 3, after
        compose_mesh.timings["kill_to_fallback_checked_s"] = round(time.monotonic() - killed, 1)

        restarted = time.monotonic()
        run(["docker", "restart", bark], compose_mesh.env)
        _wait_healthy(compose_mesh, bark, timeout=180)  # liveness: Bark itself cannot load
        compose_mesh.timings["restart_to_healthy_s"] = round(time.monotonic() - restarted, 1)
        again = _tts_turn(client, 200)
        assert _tts_provider(again) == "tts-fallback" and _bark_refused_or_skipped(again)


def _wait_healthy(mesh: ComposeMesh, container: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Health.Status}}", container],
            capture_output=True,
            text=True,
            env=mesh.env,
        ).stdout.strip()
        if status == "healthy":
            return
        time.sleep(2)
    raise AssertionError(f"{container} not healthy after {timeout} s: {status}")


def test_ui_dashboard_and_prometheus_pages_load(compose_mesh: ComposeMesh):
    auth = (compose_mesh.env["UI_USERNAME"], compose_mesh.env["UI_PASSWORD"])
    r = httpx.get("http://127.0.0.1:8080/", auth=auth, timeout=30, follow_redirects=True)
    assert r.status_code == 200 and "<html" in r.text.lower(), r.status_code
    r = httpx.get("http://127.0.0.1:8501/", timeout=30)
    assert r.status_code == 200 and "<html" in r.text.lower(), r.status_code
    assert httpx.get("http://127.0.0.1:8501/_stcore/health", timeout=30).text == "ok"
    # Prometheus (Debian's package, built on the local base) scrapes the orchestrator.
    deadline = time.monotonic() + 60
    up: dict[str, str] = {}
    while time.monotonic() < deadline:
        targets = httpx.get("http://127.0.0.1:9090/api/v1/targets", timeout=10).json()
        up = {t["labels"]["job"]: t["health"] for t in targets["data"]["activeTargets"]}
        if up.get("orchestrator") == "up":
            break
        time.sleep(2)
    assert up.get("orchestrator") == "up", up


def test_compose_down_leaves_nothing_behind(compose_mesh: ComposeMesh):
    run(["make", "compose-down"], compose_mesh.env)
    label = f"label=com.docker.compose.project={PROJECT}"
    for kind in (["ps", "-a"], ["network", "ls"], ["volume", "ls"]):
        left = run(["docker", *kind, "-q", "--filter", label], compose_mesh.env).stdout.split()
        assert not left, (kind, left)
