"""CLI and bot against the real orchestrator (services.orchestrator) over fake stage services."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from services.discord_bot.handler import Utterance, UtteranceHandler
from services.discord_bot.segmenter import Segment
from services.discord_bot.sessions import SessionIds
from services.kit.audio import decode_audio
from services.voice_client.orchestrator_client import OrchestratorClient, RetryPolicy
from testkit.fakes.stages import Knobs, fake_stage_app
from testkit.fakes.voice_orchestrator import FakeOutput
from testkit.helpers import ROOT, run_server, synth_speech, wav_bytes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stages() -> Iterator[tuple[Knobs, str]]:
    knobs = Knobs(name="stages")
    with run_server(fake_stage_app(knobs)) as url:
        yield knobs, url


@contextlib.contextmanager
def real_orchestrator(tmp: Path, stage_url: str, api_keys: str = "") -> Iterator[str]:
    from services.orchestrator.app import build_app
    from services.orchestrator.settings import Settings

    providers = {
        name: {"capability": cap, "url": stage_url, "timeout_s": 5}
        for name, cap in [("stt", "stt"), ("guard", "guardrails"), ("llm", "llm"), ("tts", "tts")]
    }
    text = [
        {"stage": "guard_input", "providers": ["guard"]},
        {"stage": "llm", "providers": ["llm"]},
        {"stage": "guard_output", "providers": ["guard"]},
    ]
    doc = {
        "active_pipeline": "voice",
        "system_prompt": {"version": "t", "text": "You are a test assistant."},
        "providers": providers,
        "pipelines": {
            "voice": [
                {"stage": "stt", "providers": ["stt"]},
                *text,
                {"stage": "tts", "providers": ["tts"]},
            ],
            "transcribe": [{"stage": "stt", "providers": ["stt"]}],
        },
    }
    path = tmp / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    settings = Settings(
        pipelines_path=str(path),
        reload_poll_s=0,
        admin_open=True,
        log_json=False,
        api_keys=api_keys,
        redis_url="",
    )
    with run_server(build_app(settings)) as base:
        yield base


@pytest.fixture(scope="module")
def question_wav() -> bytes:
    samples, rate = synth_speech("What is the weather like?")
    return wav_bytes(samples, rate)


def test_cli_round_trip_through_the_real_orchestrator(tmp_path, stages, question_wav):
    knobs, stage_url = stages
    knobs.reset()
    knobs.transcript = "what is the weather like"
    src, out = tmp_path / "q.wav", tmp_path / "reply.wav"
    src.write_bytes(question_wav)
    with real_orchestrator(tmp_path, stage_url, api_keys="secret-1") as base:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "services.voice_client",
                "--url",
                base,
                "--api-key",
                "secret-1",
                "--file",
                str(src),
                "--out",
                str(out),
                "--session",
                "cli-1",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        denied = subprocess.run(
            [sys.executable, "scripts/voice_client.py", "--url", base, "--text", "hi"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    assert "You:       what is the weather like" in proc.stdout
    assert "Assistant: " in proc.stdout and "session=cli-1 pipeline=voice" in proc.stdout
    stage_rows = [
        line.split()[0]
        for line in proc.stdout.splitlines()
        if line.split() and line.split()[0] in {"stt", "guard_input", "llm", "guard_output", "tts"}
    ]
    assert stage_rows == ["stt", "guard_input", "llm", "guard_output", "tts"]
    assert decode_audio(out.read_bytes()).duration_s > 0
    assert denied.returncode == 3 and "401" in denied.stderr and "API key" in denied.stderr


async def test_bot_turns_and_wake_phrase_through_the_real_orchestrator(
    tmp_path, stages, question_wav
):
    knobs, stage_url = stages
    knobs.reset()
    samples = decode_audio(question_wav, 16000).samples
    utt = Utterance(5, 6, "ann", Segment(samples, 1000.0, time.perf_counter()))
    out = FakeOutput()
    with real_orchestrator(tmp_path, stage_url) as base:
        client = OrchestratorClient(base, retry=RetryPolicy(max_attempts=2, base_delay_s=0.01))
        ids = SessionIds(b"test-secret")
        plain = UtteranceHandler(client, sessions=ids)
        gated = UtteranceHandler(client, wake_phrase="hey jarvis", sessions=ids)
        knobs.transcript = "what is the weather like"
        first = await plain.handle(utt, out)
        skipped = await gated.handle(utt, out)
        knobs.transcript = "hey jarvis is it going to rain"
        woken = await gated.handle(utt, out)
        knobs.transcript = "   "  # the VAD cut a cough: Whisper hears no words
        cough = await plain.handle(utt, out)
        await client.aclose()
    assert first.outcome == "played" and first.result is not None
    assert first.result.session_id == ids.of(5, 6)
    assert skipped.outcome == "no_wake_phrase"
    assert woken.outcome == "played" and woken.result is not None
    assert woken.result.transcript == "is it going to rain"  # the LLM got it without the phrase
    assert len(out.played) == 2
    assert cough.outcome == "empty" and out.texts == []  # no error message for a cough
    # 48 kHz stereo PCM16 from the TTS WAV.
    assert len(out.played[0]) % 4 == 0 and np.frombuffer(out.played[0], "<i2").size > 0
    llm = [q for q in knobs.requests if q["endpoint"] == "llm"]
    assert len(llm) == 2  # the utterance without the wake phrase never reached the LLM
    assert llm[-1]["messages"][-1]["content"] == "is it going to rain"
