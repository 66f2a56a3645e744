"""CLI and bot against the real orchestrator (services.orchestrator) over fake stage services."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from services.client import OrchestratorClient, RetryPolicy
from services.client.live import LiveSession, live_session
from services.discord_bot.audio import FRAME_BYTES
from services.discord_bot.handler import Utterance, UtteranceHandler
from services.discord_bot.live import LiveConfig, LiveSpeaker
from services.discord_bot.metrics import BotMetrics
from services.discord_bot.segmenter import Segment
from services.discord_bot.sessions import SessionIds
from services.kit.audio import decode_audio, resample
from testkit.fakes.stages import Knobs, fake_stage_app
from testkit.fakes.voice_orchestrator import FakeLiveOutput, FakeOutput
from testkit.helpers import ROOT, run_server, synth_speech, wav_bytes

pytestmark = pytest.mark.slow

COUNTING = "One two three four. Five six seven eight. Nine ten eleven twelve."


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


def _discord_frames(samples16k: np.ndarray) -> list[bytes]:
    """16 kHz mono speech as the 20 ms frames of 48 kHz stereo PCM16 Discord delivers."""
    pcm = np.repeat(np.clip(resample(samples16k, 16000, 48000), -1, 1), 2) * 32767
    data = pcm.astype("<i2").tobytes()
    return [data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)]


async def _speak(speaker: LiveSpeaker, frames: list[bytes]) -> None:
    """Feed frames at real-time pace from another thread, as the voice library does."""

    def run() -> None:
        for frame in frames:
            speaker.feed(frame)
            time.sleep(0.02)

    await asyncio.to_thread(run)


async def _until(check: Callable[[], bool], what: str, seen: object = None) -> None:
    deadline = time.monotonic() + 60.0  # generous: the box is shared
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what} ({seen})"
        await asyncio.sleep(0.05)


def _live_knobs(knobs: Knobs, reply: str, tts_seconds: float, token_delay_s: float = 0.0) -> None:
    """A healthy fake mesh that hears the question and answers `reply`."""
    knobs.reset()
    knobs.transcript = "what is the weather like"
    knobs.reply = reply
    knobs.tts_seconds = tts_seconds
    knobs.token_delay_s = token_delay_s


def _remembered_replies(knobs: Knobs) -> list[str]:
    """The assistant turns of the history the last LLM call was given."""
    llm = [q for q in knobs.requests if q["endpoint"] == "llm"]
    return [m["content"] for m in llm[-1]["messages"] if m["role"] == "assistant"]


@pytest.fixture(scope="module")
def frames(question_wav: bytes) -> list[bytes]:
    """The spoken question as Discord delivers it."""
    return _discord_frames(decode_audio(question_wav, 16000).samples)


def _live_speaker(base: str, out: FakeLiveOutput, outcomes: list[str], **kw: Any) -> LiveSpeaker:
    def opener(session_id: str) -> AbstractAsyncContextManager[LiveSession]:
        return live_session(base, pipeline="voice", session_id=session_id)

    config = LiveConfig(opener, on_outcome=outcomes.append, **kw)
    session_id = SessionIds(b"test-secret").of(5, 6)
    return LiveSpeaker(config, session_id, "ann", out, asyncio.get_running_loop())


async def test_bot_live_session_streams_the_reply_and_remembers(tmp_path, stages, frames):
    """Live mode: Discord frames up, the server's VAD ends the turn, the reply plays as it comes."""
    knobs, stage_url = stages
    reply = "It is sunny. Take a hat."
    _live_knobs(knobs, reply, tts_seconds=0.4)
    out, outcomes = FakeLiveOutput(), list[str]()
    metrics = BotMetrics()
    with real_orchestrator(tmp_path, stage_url) as base:
        speaker = _live_speaker(base, out, outcomes, metrics=metrics)
        await _speak(speaker, frames)  # then quiet: the speaker pads the silence itself
        await _until(lambda: outcomes == ["played"], "the first reply", (outcomes, out))
        await _until(lambda: out.replies[0].done, "the first reply to play out")
        knobs.reply = None  # the echoing LLM: shows the history it was given
        await _speak(speaker, frames)
        await _until(lambda: outcomes == ["played", "played"], "the second reply")
        await speaker.close()
    # Two sentences, 0.4 s of speech each, played at 48 kHz stereo (4 bytes a sample).
    assert len(out.played[0]) >= 0.7 * 48000 * 4 and out.texts == []
    assert metrics.turn_latency._sum.get() > 0  # speech_stopped → first reply audio
    llm = [q for q in knobs.requests if q["endpoint"] == "llm"]
    history = [(m["role"], m["content"]) for m in llm[-1]["messages"][1:]]
    assert history[:2] == [("user", "what is the weather like"), ("assistant", reply)]
    assert _remembered_replies(knobs) == [reply]


async def test_bot_live_barge_in_stops_the_reply_and_memory_keeps_what_was_played(
    tmp_path, stages, frames
):
    """Speaking over a reply stops its playback at once and trims the remembered reply."""
    knobs, stage_url = stages
    # The model is still writing (0.25 s a word) when the user cuts in.
    _live_knobs(knobs, COUNTING, tts_seconds=1.5, token_delay_s=0.25)
    out, outcomes = FakeLiveOutput(), list[str]()
    with real_orchestrator(tmp_path, stage_url) as base:
        speaker = _live_speaker(base, out, outcomes)
        await _speak(speaker, frames)
        await _until(lambda: bool(out.played) and len(out.played[0]) > 0, "the reply to play")
        await _speak(speaker, frames)  # the user talks over the reply
        await _until(lambda: out.replies[0].done, "the reply to stop")
        played_s = len(out.played[0]) / (48000 * 4)
        knobs.reply, knobs.token_delay_s = None, 0.0
        await _until(lambda: len(outcomes) >= 2, "the answer to the second question")
        await speaker.close()
    assert outcomes[0] == "interrupted" and outcomes[-1] == "played"
    assert played_s < 3 * 1.5  # cut before the three sentences had played
    assistant = _remembered_replies(knobs)
    assert assistant and "Nine" not in assistant[0]  # memory: only what was played


async def test_bot_live_cut_after_the_reply_was_sent_trims_memory_to_what_was_played(
    tmp_path, stages, frames
):
    """The whole reply arrived at once; the user cuts in while it plays: truncate trims memory."""
    knobs, stage_url = stages
    _live_knobs(knobs, COUNTING, tts_seconds=2.0)  # 6 s of audio, sent long before it plays
    out, outcomes = FakeLiveOutput(), list[str]()
    with real_orchestrator(tmp_path, stage_url) as base:
        speaker = _live_speaker(base, out, outcomes)
        await _speak(speaker, frames)
        await _until(lambda: outcomes == ["played"], "the whole reply to arrive", outcomes)
        assert not out.replies[0].done  # still playing
        knobs.reply = None
        await _speak(speaker, frames)
        await _until(lambda: out.replies[0].done, "playback to stop")
        played_s = len(out.played[0]) / (48000 * 4)
        await _until(lambda: len(outcomes) == 2, "the answer to the second question", outcomes)
        await speaker.close()
    assert played_s < 4.0
    assistant = _remembered_replies(knobs)
    assert assistant[0].startswith("One") and "Nine" not in assistant[0]
