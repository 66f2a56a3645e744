"""One utterance → (wake phrase check) → orchestrator turn → reply played or posted."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Protocol

from services.client import OrchestratorClient, OrchestratorError, TurnResult
from services.discord_bot.audio import PIPELINE_RATE, wav_to_pcm48_stereo
from services.discord_bot.metrics import BotMetrics
from services.discord_bot.segmenter import Segment
from services.discord_bot.sessions import SessionIds
from services.kit.audio import encode_wav
from services.kit.errors import ApiError

log = logging.getLogger("discord_bot.handler")

DISCORD_MESSAGE_LIMIT = 2000


class PlaybackUnavailable(Exception):
    """The reply cannot be played (not connected, no opus, already playing elsewhere...)."""


class VoiceOutput(Protocol):
    """Where replies go: the voice channel, and a text channel as the fallback."""

    async def play(self, pcm48_stereo: bytes) -> None:
        """Play 48 kHz stereo PCM16 in the voice channel, or raise PlaybackUnavailable."""
        ...

    async def send_text(self, text: str) -> None:
        """Post a message in the text channel tied to the voice session."""
        ...


@dataclass(frozen=True)
class Utterance:
    """A finished utterance of one speaker in one guild."""

    guild_id: int
    user_id: int
    user_name: str
    segment: Segment


@dataclass(frozen=True)
class TurnOutcome:
    """What the handler did with one utterance."""

    outcome: str  # played | posted | no_wake_phrase | empty | error
    result: TurnResult | None = None
    error: str | None = None


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def strip_wake_phrase(transcript: str, phrase: str, slack_words: int = 2) -> str | None:
    """The words after the wake phrase if it opens the transcript (a few filler words allowed)."""
    want = _words(phrase)
    got = _words(transcript)
    if not want:
        return transcript
    for start in range(0, min(slack_words, max(len(got) - len(want), 0)) + 1):
        if got[start : start + len(want)] == want:
            return " ".join(got[start + len(want) :])
    return None


def has_wake_phrase(transcript: str, phrase: str, slack_words: int = 2) -> bool:
    """True if the phrase's words appear in order near the start of the transcript."""
    return strip_wake_phrase(transcript, phrase, slack_words) is not None


def clip_message(text: str) -> str:
    """Fit a message into Discord's 2,000-character limit."""
    if len(text) <= DISCORD_MESSAGE_LIMIT:
        return text
    return text[: DISCORD_MESSAGE_LIMIT - 1] + "…"


class UtteranceHandler:
    """Turns utterances into orchestrator turns and delivers the replies."""

    def __init__(
        self,
        client: OrchestratorClient,
        *,
        pipeline: str | None = None,
        wake_phrase: str | None = None,
        wake_pipeline: str = "transcribe",
        always_post_text: bool = False,
        metrics: BotMetrics | None = None,
        sessions: SessionIds | None = None,
    ) -> None:
        self.client = client
        self.sessions = sessions or SessionIds()
        self.pipeline = pipeline
        self.wake_phrase = wake_phrase
        self.wake_pipeline = wake_pipeline
        self.always_post_text = always_post_text
        self.metrics = metrics

    async def handle(self, utt: Utterance, out: VoiceOutput) -> TurnOutcome:
        """Run one utterance through the orchestrator and deliver the reply."""
        outcome = await self._handle(utt, out)
        if self.metrics is not None:
            self.metrics.utterances.labels(outcome.outcome).inc()
            if outcome.result is not None:
                self.metrics.orchestrator_attempts.inc(outcome.result.attempts)
        log.info(
            "utterance handled",
            # No session id: it is what lets a caller with the bot's key reach the history.
            extra={
                "outcome": outcome.outcome,
                "utterance_s": round(utt.segment.duration_s, 2),
            },
        )
        return outcome

    async def _handle(self, utt: Utterance, out: VoiceOutput) -> TurnOutcome:
        wav = encode_wav(utt.segment.samples, PIPELINE_RATE)
        session_id = self.sessions.of(utt.guild_id, utt.user_id)
        if self.metrics is not None:
            self.metrics.utterance_seconds.observe(utt.segment.duration_s)
        try:
            if self.wake_phrase:
                # STT only first: nothing reaches the LLM (or the conversation memory) unless
                # the user addressed the bot; then the question goes on as text, wake phrase
                # removed, so the audio is transcribed once.
                heard = await self.client.voice_turn(
                    wav, session_id=session_id, pipeline=self.wake_pipeline
                )
                question = strip_wake_phrase(heard.transcript or "", self.wake_phrase)
                if question is None:
                    return TurnOutcome("no_wake_phrase", heard)
                if not question.strip():
                    return TurnOutcome("empty", heard)
                result = await self.client.text_turn(
                    question, session_id=session_id, pipeline=self.pipeline, audio=True
                )
            else:
                result = await self.client.voice_turn(
                    wav, session_id=session_id, pipeline=self.pipeline
                )
        except OrchestratorError as exc:
            if exc.code == "no_speech":
                # The VAD heard a cough or a click; Whisper found no words. Nothing to say.
                return TurnOutcome("empty", error=exc.message)
            await self._tell(out, f"Sorry {utt.user_name}, I could not answer: {exc.message}")
            return TurnOutcome("error", error=exc.message)
        if not (result.response or "").strip():
            return TurnOutcome("empty", result)
        if self.metrics is not None:
            self.metrics.turn_latency.observe(time.perf_counter() - utt.segment.ended_at)
        text = clip_message(
            f"**{utt.user_name}:** {result.transcript or ''}\n**Assistant:** {result.response}"
        )
        played = await self._play(result, out)
        if not played or self.always_post_text:
            await self._tell(out, text)
        return TurnOutcome("played" if played else "posted", result)

    async def _play(self, result: TurnResult, out: VoiceOutput) -> bool:
        if result.audio_wav is None:
            return False
        try:
            pcm = wav_to_pcm48_stereo(result.audio_wav)
        except ApiError as exc:
            log.warning("reply audio could not be decoded", extra={"error": exc.message})
            return False
        try:
            await out.play(pcm)
        except PlaybackUnavailable as exc:
            log.info("playback impossible, posting text", extra={"reason": str(exc)})
            return False
        return True

    async def _tell(self, out: VoiceOutput, text: str) -> None:
        try:
            await out.send_text(clip_message(text))
        except Exception as exc:  # a failed post must not kill the user's worker loop
            log.warning("could not post a message", extra={"error": f"{type(exc).__name__}"})
