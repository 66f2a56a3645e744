"""The Discord bot's logic without Discord: utterances ⇄ fake orchestrator ⇄ fake channel."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from contextlib import AbstractAsyncContextManager

import httpx
import numpy as np
import pytest

from services.client import OrchestratorClient, RetryPolicy
from services.client.live import LiveSession, live_session
from services.discord_bot.app import build_app
from services.discord_bot.audio import FRAME_BYTES
from services.discord_bot.handler import (
    Utterance,
    UtteranceHandler,
    has_wake_phrase,
    strip_wake_phrase,
)
from services.discord_bot.live import LiveConfig, LiveSpeaker
from services.discord_bot.metrics import BotMetrics
from services.discord_bot.receiver import VoiceReceiver
from services.discord_bot.segmenter import Segment, UtteranceSegmenter
from services.discord_bot.sessions import SessionIds
from services.discord_bot.settings import Settings, load_settings
from services.discord_bot.vad import SileroDetector
from services.kit.audio import resample
from testkit.fakes.voice_orchestrator import (
    REPLY_TEXT,
    FakeLiveOutput,
    FakeOrchestrator,
    FakeOutput,
    reply_wav,
)
from testkit.helpers import ROOT, free_port, run_server, synth_speech

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05)


@pytest.fixture(scope="module")
def question() -> np.ndarray:
    return synth_speech("What is the meaning of life?")[0]


def _utt(samples: np.ndarray, guild: int = 7, user: int = 42) -> Utterance:
    return Utterance(guild, user, "alice", Segment(samples, 1000.0, time.perf_counter()))


def _handler(base: str, **kw) -> UtteranceHandler:
    client = OrchestratorClient(base, retry=FAST_RETRY, timeout_s=10)
    return UtteranceHandler(client, **kw)


def test_session_ids_are_unguessable_and_stable_per_secret():
    a, b = SessionIds(b"secret-a"), SessionIds(b"secret-a")
    assert a.of(7, 42) == b.of(7, 42)  # stable while the secret is
    assert a.of(7, 42) != a.of(7, 43) and a.of(7, 42) != a.of(8, 42)
    # Public Discord ids do not name the session; another secret (or a random one) gives
    # other ids, so a caller who knows the user id cannot reach the history.
    assert SessionIds(b"secret-b").of(7, 42) != a.of(7, 42)
    assert SessionIds().of(7, 42) != SessionIds().of(7, 42)
    assert re.fullmatch(r"discord-[0-9a-f]{32}", a.of(7, 42))


def test_wake_phrase_matching():
    assert strip_wake_phrase("Hey Jarvis, what time is it?", "hey jarvis") == "what time is it"
    assert has_wake_phrase("Hey Jarvis, what time is it?", "hey jarvis")
    assert has_wake_phrase("Okay, hey jarvis what time", "Hey Jarvis")
    assert not has_wake_phrase("what time is it jarvis", "hey jarvis")
    assert not has_wake_phrase("", "hey jarvis")


@pytest.mark.slow
async def test_utterance_is_sent_with_per_user_session_and_reply_is_played(question):
    fake = FakeOrchestrator()
    metrics = BotMetrics()
    out = FakeOutput()
    with run_server(fake.app()) as base:
        handler = _handler(base, metrics=metrics)
        outcome = await handler.handle(_utt(question), out)
        await handler.client.aclose()
    assert outcome.outcome == "played" and fake.turns == {handler.sessions.of(7, 42): 1}
    # The reply (22.05 kHz mono WAV) arrives as 48 kHz stereo PCM16 for Discord.
    frames = np.frombuffer(out.played[0], dtype="<i2").reshape(-1, 2)
    expected = decode_len(reply_wav()) * 48000 / 22050
    assert abs(len(frames) - expected) < 5 and out.texts == []
    assert metrics.turn_latency._sum.get() > 0  # VAD end → reply measured
    assert metrics.utterances.labels("played")._value.get() == 1


def decode_len(wav: bytes) -> int:
    from services.kit.audio import decode_audio

    return len(decode_audio(wav).samples)


@pytest.mark.slow
async def test_reply_is_posted_as_text_when_playback_is_impossible(question):
    fake = FakeOrchestrator()
    out = FakeOutput(can_play=False)
    with run_server(fake.app()) as base:
        handler = _handler(base)
        outcome = await handler.handle(_utt(question), out)
        # No audio from the orchestrator at all: also text.
        fake.with_audio = False
        outcome2 = await handler.handle(_utt(question), FakeOutput())
        await handler.client.aclose()
    assert outcome.outcome == "posted" and outcome2.outcome == "posted"
    assert out.texts == [f"**alice:** what is the meaning of life\n**Assistant:** {REPLY_TEXT}"]


@pytest.mark.slow
async def test_wake_phrase_gates_the_llm(question):
    fake = FakeOrchestrator(transcript="what is the meaning of life")
    out = FakeOutput()
    with run_server(fake.app()) as base:
        handler = _handler(base, wake_phrase="hey jarvis", pipeline="voice")
        skipped = await handler.handle(_utt(question), out)
        assert skipped.outcome == "no_wake_phrase" and not fake.turns and out.played == []
        fake.transcript = "Hey Jarvis, what is the meaning of life?"
        answered = await handler.handle(_utt(question), out)
        fake.transcript = "hey jarvis"
        bare = await handler.handle(_utt(question), out)
        await handler.client.aclose()
    assert answered.outcome == "played" and len(out.played) == 1
    assert bare.outcome == "empty" and fake.turns == {handler.sessions.of(7, 42): 1}
    # Audio is transcribed once (STT-only pipeline); the LLM gets the question without the phrase.
    assert fake.pipelines == ["transcribe", "transcribe", "voice", "transcribe"]
    assert fake.texts == ["what is the meaning of life"]


async def test_orchestrator_down_posts_a_clear_message_without_turns():
    out = FakeOutput()
    url = f"http://127.0.0.1:{free_port()}"
    handler = _handler(url)
    outcome = await handler.handle(_utt(np.zeros(16000, dtype=np.float32)), out)
    await handler.client.aclose()
    assert outcome.outcome == "error" and out.played == []
    assert len(out.texts) == 1 and "could not answer" in out.texts[0]
    assert "cannot reach the orchestrator" in out.texts[0] and "3 attempts" in out.texts[0]


@pytest.mark.slow
async def test_overloaded_orchestrator_is_retried_without_duplicate_turn(question):
    fake = FakeOrchestrator(fail_times=2, fail_status=503)
    with run_server(fake.app()) as base:
        handler = _handler(base)
        outcome = await handler.handle(_utt(question), FakeOutput())
        await handler.client.aclose()
    assert outcome.outcome == "played" and outcome.result is not None
    assert outcome.result.attempts == 3 and fake.requests == 3
    assert fake.turns == {handler.sessions.of(7, 42): 1}
    assert len(set(fake.request_ids)) == 1


@pytest.mark.slow
async def test_two_users_speaking_through_the_receiver_get_their_own_sessions(question):
    """48 kHz stereo frames per user → VAD → one turn per utterance, in each user's session."""
    fake = FakeOrchestrator()
    out = FakeOutput()
    pause = np.zeros(16000, dtype=np.float32)
    stream16 = np.concatenate([pause, question, pause, question, pause])
    pcm = np.repeat(np.clip(resample(stream16, 16000, 48000), -1, 1), 2) * 32767
    pcm_bytes = pcm.astype("<i2").tobytes()
    with run_server(fake.app()) as base:
        handler = _handler(base)
        receiver = VoiceReceiver(
            9,
            handler,
            out,
            lambda: UtteranceSegmenter(SileroDetector(), silence_ms=600),
            loop=asyncio.get_running_loop(),
            max_pending=3,
        )

        def speak() -> None:  # the voice library calls feed() from its own thread
            for i in range(0, len(pcm_bytes), FRAME_BYTES):
                receiver.feed(1, "ann", pcm_bytes[i : i + FRAME_BYTES])
                receiver.feed(2, "bob", pcm_bytes[i : i + FRAME_BYTES])

        await asyncio.to_thread(speak)
        for _ in range(200):
            await asyncio.sleep(0.05)
            await receiver.drain()
            if sum(fake.turns.values()) >= 4:
                break
        await receiver.close()
        await handler.client.aclose()
    assert fake.turns == {handler.sessions.of(9, 1): 2, handler.sessions.of(9, 2): 2}
    assert len(out.played) == 4


def test_missing_token_fails_fast_with_a_clear_message(monkeypatch):
    monkeypatch.delenv("DISCORD_BOT_TOKEN", raising=False)
    with pytest.raises(SystemExit) as info:
        load_settings()
    assert "DISCORD_BOT_TOKEN is not set" in str(info.value.code)
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "  ")
    with pytest.raises(SystemExit) as info:
        load_settings()
    assert "DISCORD_BOT_TOKEN is empty" in str(info.value.code)
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "abc")
    monkeypatch.setenv("DISCORD_SILENCE_MS", "5")
    with pytest.raises(SystemExit) as info:
        load_settings()
    assert "DISCORD_SILENCE_MS" in str(info.value.code)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISCORD_")}
    proc = subprocess.run(
        [sys.executable, "-m", "services.discord_bot"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "DISCORD_BOT_TOKEN is not set" in proc.stderr
    assert "Traceback" not in proc.stderr


class FakeBot:
    """Implements the BotRunner interface the service drives."""

    def __init__(self, fail_login: bool = False, fail_connect: bool = False) -> None:
        self.fail_login = fail_login
        self.fail_connect = fail_connect
        self.closed = False
        self._stop = asyncio.Event()

    async def login(self, token: str) -> None:
        if self.fail_login:
            raise RuntimeError("Improper token has been passed.")

    async def connect(self) -> None:
        if self.fail_connect:
            raise RuntimeError("privileged intents are not enabled")
        await self._stop.wait()

    async def close(self) -> None:
        self.closed = True
        self._stop.set()


def _settings(**kw) -> Settings:
    return Settings(bot_token="t", orchestrator_url="http://127.0.0.1:9", **kw)


@pytest.mark.slow
def test_service_health_and_metrics_with_a_fake_bot():
    bots: list[FakeBot] = []

    def factory(settings, handler, metrics, state):
        bot = FakeBot()
        bots.append(bot)
        state.readiness.ready, state.readiness.reason = True, "ok"  # as on_ready does
        return bot

    with run_server(build_app(_settings(), bot_factory=factory)) as base:
        ready = httpx.get(base + "/health/ready").json()
        assert ready["engine"] == "discord.py" and ready["model"] == "silero-vad"
        metrics = httpx.get(base + "/metrics").text
        assert "discord_turn_latency_seconds_bucket" in metrics
        assert "discord_utterances_total" in metrics or "discord_voice_connections" in metrics
    assert bots and bots[0].closed


@pytest.mark.slow
def test_bad_token_makes_readiness_report_the_failure():
    app = build_app(_settings(), bot_factory=lambda *a: FakeBot(fail_login=True))
    with run_server(app, ready_path="/health/live") as base:
        for _ in range(100):
            r = httpx.get(base + "/health/ready")
            if "startup failed" in r.text:
                break
            time.sleep(0.1)
    assert r.status_code == 503 and "Improper token" in r.json()["reason"]


@pytest.mark.slow
def test_gateway_failing_after_login_turns_readiness_red():
    def factory(settings, handler, metrics, state):
        state.readiness.ready = True
        return FakeBot(fail_connect=True)

    with run_server(build_app(_settings(), bot_factory=factory), ready_path="/health/live") as base:
        for _ in range(100):
            r = httpx.get(base + "/health/ready")
            if "connection ended" in r.text:
                break
            time.sleep(0.1)
    assert r.status_code == 503
    assert r.json()["reason"] == (
        "Discord connection ended: RuntimeError: privileged intents are not enabled"
    )


def test_real_discord_bot_builds_offline():
    import discord.ext.voice_recv  # noqa: F401  (the discord extra; required, not skipped)

    from services.discord_bot.discord_adapter import _make_sink, build_bot
    from services.kit.app import Readiness

    async def build():
        settings = _settings()
        handler = _handler("http://127.0.0.1:9")
        runner = build_bot(settings, handler, BotMetrics(), Readiness(), lambda: None)
        names = {c.name for c in runner.bot.commands}
        slash = {c.name for c in runner.bot.tree.get_commands()}
        assert {"join", "leave"} <= slash  # hybrid commands: slash and (optional) text
        receiver = VoiceReceiver(
            1, handler, FakeOutput(), lambda: None, loop=asyncio.get_running_loop()
        )
        sink = _make_sink(receiver)
        await runner.bot.close()
        await handler.client.aclose()
        return names, sink

    names, sink = asyncio.run(build())
    assert {"join", "leave"} <= names and sink.wants_opus()


class _FakeDave:
    """Stands in for davey.DaveSession: 'decrypts' by undoing a XOR, per user."""

    ready = True

    def __init__(self) -> None:
        self.calls: list[int] = []

    def decrypt(self, user_id: int, media_type: object, payload: bytes) -> bytes:
        self.calls.append(user_id)
        return bytes(b ^ 0x5A for b in payload)


def test_sink_removes_dave_encryption_then_decodes_opus_per_user():
    """Real opus frames, 'end-to-end encrypted', through the real voice_recv sink class."""
    import types

    import discord
    import discord.ext.voice_recv

    from services.discord_bot.audio import pcm48_stereo_to_16k_mono
    from services.discord_bot.discord_adapter import _make_sink

    fed: dict[int, list[bytes]] = {}
    receiver = types.SimpleNamespace(
        feed=lambda uid, name, pcm: fed.setdefault(uid, []).append(pcm),
        user_left=lambda uid: None,
    )
    sink = _make_sink(receiver)
    dave = _FakeDave()
    sink._voice_client = types.SimpleNamespace(_connection=types.SimpleNamespace(dave_session=dave))
    t = np.arange(48000) / 48000
    tone = (0.4 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    pcm = np.repeat(tone, 2).tobytes()
    encoder = discord.opus.Encoder()
    user = types.SimpleNamespace(id=11, display_name="ann")
    for i in range(0, len(pcm), FRAME_BYTES):
        packet = bytes(b ^ 0x5A for b in encoder.encode(pcm[i : i + FRAME_BYTES], 960))
        sink.write(user, types.SimpleNamespace(opus=packet))
    sink.write(None, types.SimpleNamespace(opus=b"\x00"))  # unknown SSRC: dropped
    assert set(fed) == {11} and len(dave.calls) == 50
    decoded = b"".join(fed[11])
    assert len(decoded) == len(pcm)
    mono = pcm48_stereo_to_16k_mono(decoded)[1600:]
    spec = np.abs(np.fft.rfft(mono))
    assert abs(np.fft.rfftfreq(len(mono), 1 / 16000)[int(np.argmax(spec))] - 440) < 3


def test_live_mode_refuses_a_wake_phrase():
    with pytest.raises(
        ValueError, match="DISCORD_LIVE cannot be combined with DISCORD_WAKE_PHRASE"
    ):
        Settings(bot_token="t", live=True, wake_phrase="hey jarvis")
    assert Settings(bot_token="t", live=True).live


async def test_live_speaker_reports_a_session_that_cannot_open_and_retries_on_new_audio():
    """Orchestrator down: one clear message, no crash; new audio after reconnect_s tries again."""
    url = f"http://127.0.0.1:{free_port()}"
    tries: list[str] = []

    def opener(session_id: str) -> AbstractAsyncContextManager[LiveSession]:
        tries.append(session_id)
        return live_session(url, session_id=session_id)

    out, outcomes = FakeLiveOutput(), list[str]()
    config = LiveConfig(opener, on_outcome=outcomes.append, reconnect_s=0.5)
    speaker = LiveSpeaker(config, "s-1", "ann", out, asyncio.get_running_loop())
    frame = bytes(FRAME_BYTES)
    speaker.feed(frame)
    for _ in range(200):
        await asyncio.sleep(0.05)
        if outcomes:
            break
    speaker.feed(frame)  # too soon after the failure: no new attempt
    await asyncio.sleep(0.1)
    assert outcomes == ["error"] and tries == ["s-1"]
    assert len(out.texts) == 1 and "Sorry ann, I could not reach the assistant" in out.texts[0]
    await asyncio.sleep(0.5)
    speaker.feed(frame)
    for _ in range(200):
        await asyncio.sleep(0.05)
        if len(outcomes) == 2:
            break
    await speaker.close()
    assert tries == ["s-1", "s-1"] and outcomes == ["error", "error"]


class _FakeVoiceClient:
    """The part of discord.py's VoiceClient that ChannelOutput uses."""

    def __init__(self, connected: bool = True) -> None:
        self.connected = connected
        self.source: object | None = None

    def is_connected(self) -> bool:
        return self.connected

    def is_playing(self) -> bool:
        return self.source is not None

    def play(self, source: object, **_: object) -> None:
        self.source = source


def test_live_reply_plays_through_a_real_discord_audio_source():
    import discord

    from services.discord_bot.discord_adapter import ChannelOutput
    from services.discord_bot.handler import PlaybackUnavailable
    from services.discord_bot.live import BufferedReply

    vc = _FakeVoiceClient()
    reply = BufferedReply()
    ChannelOutput(vc, None).start_reply(reply)
    source = vc.source
    assert isinstance(source, discord.AudioSource) and not source.is_opus()
    reply.write(b"\x03" * FRAME_BYTES)
    assert source.read() == b"\x03" * FRAME_BYTES  # what discord.py's player thread reads
    assert source.read() == bytes(FRAME_BYTES)  # still arriving: silence, playback goes on
    reply.finish()
    assert source.read() == b""  # the end: discord.py stops the player
    with pytest.raises(PlaybackUnavailable, match="another reply"):
        ChannelOutput(vc, None).start_reply(BufferedReply())
    with pytest.raises(PlaybackUnavailable, match="not connected"):
        ChannelOutput(_FakeVoiceClient(connected=False), None).start_reply(BufferedReply())
