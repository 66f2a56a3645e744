"""The orchestrator client and the CLI against a fake orchestrator over real HTTP."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from services.client import (
    OrchestratorClient,
    OrchestratorError,
    OrchestratorUnavailable,
    RetryPolicy,
)
from services.kit.audio import decode_audio
from testkit.fakes.voice_orchestrator import REPLY_TEXT, FakeOrchestrator
from testkit.helpers import ROOT, free_port, run_server, synth_speech, wav_bytes

FAST_RETRY = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05)


@pytest.fixture(scope="module")
def question_wav() -> bytes:
    samples, rate = synth_speech("What is the meaning of life?")
    return wav_bytes(samples, rate)


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.voice_client", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_cli_sends_file_saves_reply_and_prints_stage_timings(tmp_path, question_wav):
    fake = FakeOrchestrator(api_key="k-123")
    src, out = tmp_path / "q.wav", tmp_path / "reply.wav"
    src.write_bytes(question_wav)
    with run_server(fake.app()) as base:
        proc = _cli(
            "--url",
            base,
            "--api-key",
            "k-123",
            "--file",
            str(src),
            "--out",
            str(out),
            "--session",
            "s-cli",
            "--pipeline",
            "voice",
        )
    assert proc.returncode == 0, proc.stderr
    assert "You:       what is the meaning of life" in proc.stdout
    assert f"Assistant: {REPLY_TEXT}" in proc.stdout
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("stage"))
    assert lines[header].split() == ["stage", "provider", "status", "attempts", "ms"]
    assert lines[header + 2].split() == ["stt", "stt-local", "ok", "1", "123"]
    assert lines[header + 3].split() == ["llm", "llm-flan", "ok", "2", "457"]
    reply = decode_audio(out.read_bytes())
    assert reply.sample_rate == 22050 and reply.duration_s > 1.0
    assert fake.turns == {"s-cli": 1} and fake.pipelines == ["voice"]
    assert fake.uploads == [question_wav]


@pytest.mark.slow
def test_cli_text_mode_uses_mcp_transcript(tmp_path):
    fake = FakeOrchestrator()
    out = tmp_path / "spoken.wav"
    with run_server(fake.app()) as base:
        proc = _cli("--url", base, "--text", "Tell me a joke", "--session", "s-text")
        spoken = _cli(
            "--url", base, "--text", "And another", "--session", "s-text", "--out", str(out)
        )
    assert proc.returncode == 0, proc.stderr
    assert "You:       Tell me a joke" in proc.stdout and REPLY_TEXT in proc.stdout
    assert "reply audio saved" not in proc.stdout
    assert spoken.returncode == 0 and "reply audio saved" in spoken.stdout
    assert decode_audio(out.read_bytes()).duration_s > 1.0
    assert fake.turns == {"s-text": 2} and fake.texts == ["Tell me a joke", "And another"]


def test_cli_orchestrator_down_gives_clear_message_and_exit_code(tmp_path):
    src = tmp_path / "q.wav"
    src.write_bytes(wav_bytes(__import__("numpy").zeros(1600, dtype="float32"), 16000))
    url = f"http://127.0.0.1:{free_port()}"
    proc = _cli("--url", url, "--file", str(src), "--retries", "2", "--retry-base", "0.01")
    assert proc.returncode == 3
    assert f"cannot reach the orchestrator at {url}" in proc.stderr
    assert "gave up after 2 attempts" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_unreadable_file_is_a_usage_error(tmp_path):
    proc = _cli("--file", str(tmp_path / "nope.wav"))
    assert proc.returncode == 2 and "cannot read" in proc.stderr


def test_cli_without_sounddevice_explains_how_to_record():
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError):
        pass
    else:
        pytest.skip("sounddevice is installed here; this checks the message without it")
    proc = _cli("--record", "0.1", "--url", "http://127.0.0.1:9")
    assert proc.returncode == 4
    assert "pip install sounddevice" in proc.stderr and "--file" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_retries_503_with_one_request_id_and_one_turn(question_wav):
    fake = FakeOrchestrator(fail_times=2, fail_status=503)
    with run_server(fake.app()) as base:
        async with OrchestratorClient(base, retry=FAST_RETRY) as client:
            result = await client.voice_turn(question_wav, session_id="s1")
    assert result.attempts == 3 and result.response == REPLY_TEXT
    assert result.audio_wav is not None and result.audio_wav[:4] == b"RIFF"
    assert fake.requests == 3 and fake.turns == {"s1": 1}
    assert len(set(fake.request_ids)) == 1 and fake.request_ids[0] == result.request_id


async def test_429_retry_after_is_honoured(question_wav):
    fake = FakeOrchestrator(fail_times=1, fail_status=429, retry_after="0.3")
    with run_server(fake.app()) as base:
        policy = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=2.0)
        async with OrchestratorClient(base, retry=policy) as client:
            started = time.perf_counter()
            result = await client.text_turn("hi", session_id="s2")
            waited = time.perf_counter() - started
    assert result.attempts == 2 and waited >= 0.3 and fake.turns == {"s2": 1}


async def test_client_errors_are_not_retried():
    fake = FakeOrchestrator(fail_times=5, fail_status=400)
    with run_server(fake.app()) as base:
        async with OrchestratorClient(base, retry=FAST_RETRY) as client:
            with pytest.raises(OrchestratorError) as info:
                await client.text_turn("hi", session_id="s3")
    assert info.value.status == 400 and info.value.attempts == 1 and fake.requests == 1
    assert "orchestrator is not ready" in info.value.message


async def test_persistent_503_gives_up_with_unavailable():
    fake = FakeOrchestrator(fail_times=99, fail_status=503)
    with run_server(fake.app()) as base:
        async with OrchestratorClient(base, retry=FAST_RETRY) as client:
            with pytest.raises(OrchestratorUnavailable) as info:
                await client.text_turn("hi", session_id="s4")
    assert info.value.attempts == 4 and fake.requests == 4 and not fake.turns


async def test_read_timeout_is_not_retried_so_no_duplicate_turn(question_wav):
    fake = FakeOrchestrator(hang_s=1.0)
    with run_server(fake.app()) as base:
        async with OrchestratorClient(base, timeout_s=0.3, retry=FAST_RETRY) as client:
            with pytest.raises(OrchestratorError) as info:
                await client.voice_turn(question_wav, session_id="s5")
        await asyncio.sleep(1.0)  # let the slow request finish server-side
    assert "not retried to avoid a duplicate turn" in info.value.message
    assert fake.requests == 1 and fake.turns == {"s5": 1}


async def test_wrong_api_key_is_reported():
    fake = FakeOrchestrator(api_key="right")
    with run_server(fake.app()) as base:
        async with OrchestratorClient(base, api_key="wrong", retry=FAST_RETRY) as client:
            with pytest.raises(OrchestratorError) as info:
                await client.text_turn("hi", session_id="s6")
    assert info.value.status == 401 and "invalid API key" in info.value.message
