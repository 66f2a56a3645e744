"""The whole mesh as one Wyoming endpoint: ASR, TTS and conversation through the pipelines.

Home Assistant adds one Wyoming integration and gets three things, each run by the same
`Runner` as the HTTP API (fallbacks, circuit breakers, guardrails, metrics, config snapshots):

- `asr`: `transcribe` + audio -> `transcript` through the ASR pipeline (denoise + STT);
- `tts`: `synthesize` (and streamed text, sentence by sentence) -> audio through the TTS
  pipeline (Bark, falling back to Piper);
- `handle`: `transcript` (text, context.conversation_id) -> `handled`, or `not-handled`
  with the refusal text when guardrails block, through the conversation pipeline; the
  history is kept per Wyoming conversation id.

No API key travels in Wyoming, so the endpoint is off unless `ORCH_WYOMING_ENABLED=true` and
then serves only the networks in `ORCH_WYOMING_ALLOW` (loopback and private by default).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    HandleModel,
    HandleProgram,
    Info,
    TtsProgram,
    TtsVoice,
)
from wyoming.tts import Synthesize, SynthesizeVoice

from services.kit import ApiError, ServiceState
from services.kit.audio import decode_audio
from services.kit.wyoming import (
    Channel,
    EventError,
    Session,
    WyomingServer,
    described,
    server_factory,
)
from services.kit.wyoming_media import (
    AudioCollector,
    AudioInput,
    StreamedText,
    clean_text,
    pcm16_chunks,
)
from services.orchestrator.deps import Deps
from services.orchestrator.run import RunInput, RunResult
from services.orchestrator.settings import Settings
from services.tts_common.voices import OPENAI_VOICES

log = logging.getLogger("orchestrator.wyoming")

PROGRAM = "audio-orchestrator"
ATTRIBUTION = Attribution(name="Audio Orchestrator", url="")
_SESSION_SAFE = re.compile(r"^[A-Za-z0-9_.:@\-]{1,110}$")


def session_for(context: dict[str, Any] | None) -> tuple[str, str]:
    """(session id, conversation id) for a Wyoming context; a new conversation when none."""
    raw = (context or {}).get("conversation_id")
    conversation = str(raw) if isinstance(raw, str | int) and str(raw) else uuid.uuid4().hex
    if _SESSION_SAFE.match(conversation):
        return f"wyoming:{conversation}", conversation
    # Any other id still maps to one stable session, within the session-id alphabet.
    return "wyoming:" + hashlib.sha256(conversation.encode()).hexdigest()[:40], conversation


def build_info(settings: Settings) -> Info:
    """asr, tts and handle programs, each named after the pipeline that serves it."""
    languages = [s.strip() for s in settings.wyoming_languages.split(",") if s.strip()]
    asr = settings.wyoming_asr_pipeline
    tts = settings.wyoming_tts_pipeline
    handle = settings.wyoming_handle_pipeline
    return Info(
        asr=[
            AsrProgram(
                name=f"{PROGRAM}-asr",
                description=f"pipeline '{asr}': denoise and speech-to-text with fallbacks",
                **described(ATTRIBUTION, "0.1.0"),
                models=[
                    AsrModel(
                        name=asr,
                        description=f"pipeline '{asr}'",
                        **described(ATTRIBUTION),
                        languages=languages,
                    )
                ],
            )
        ],
        tts=[
            TtsProgram(
                name=f"{PROGRAM}-tts",
                description=f"pipeline '{tts}': text-to-speech with fallbacks",
                **described(ATTRIBUTION, "0.1.0"),
                supports_synthesize_streaming=True,
                voices=[
                    TtsVoice(
                        name=voice,
                        description=f"{voice} (mapped by each TTS provider)",
                        **described(ATTRIBUTION),
                        languages=languages,
                    )
                    for voice in OPENAI_VOICES
                ],
            )
        ],
        handle=[
            HandleProgram(
                name=PROGRAM,
                description=f"pipeline '{handle}': guarded LLM conversation with memory",
                **described(ATTRIBUTION, "0.1.0"),
                models=[
                    HandleModel(
                        name=handle,
                        description=f"pipeline '{handle}'",
                        **described(ATTRIBUTION),
                        languages=languages,
                    )
                ],
            )
        ],
    )


class MeshSession(AudioInput, StreamedText, Session):
    """One client of the orchestrator's Wyoming endpoint."""

    def __init__(self, channel: Channel, state: ServiceState, settings: Settings) -> None:
        super().__init__(channel)
        self.state = state
        self.settings = settings
        self.audio = AudioCollector(settings.max_audio_bytes)
        self.stream_chars = settings.max_text_chars

    def handlers(self) -> dict[str, Callable[[Event], Awaitable[bool]]]:
        """ASR, TTS and handle events."""
        return {
            "transcribe": self.on_transcribe,
            **self.audio_handlers(),
            "audio-stop": self.on_audio_stop,
            "synthesize": self.on_synthesize,
            **self.stream_handlers(),
            "transcript": self.on_transcript,
        }

    async def _run(self, inp: RunInput) -> RunResult:
        # Wyoming carries no API key: its conversations live in their own scope, apart from
        # every HTTP key's (and the keyless "open" one), and the guardrails count all Wyoming
        # clients as one end user (the endpoint is fenced to private networks).
        inp = dataclasses.replace(inp, scope="wyoming", identity="wyoming")
        try:
            return await self.state.require(Deps).service.run(inp)
        except ApiError as exc:
            raise EventError(exc.code or "pipeline_failed", exc.message) from exc

    # --- asr -------------------------------------------------------------------------------

    async def on_transcribe(self, event: Event) -> bool:
        """The pipeline's STT stage names its language; the request's is not needed."""
        return True

    async def on_audio_stop(self, event: Event) -> bool:
        """Run the ASR pipeline on the utterance and answer its transcript; then close."""
        wav = self.take_wav()
        text = ""
        if wav is not None:
            inp = RunInput(
                session_id=uuid.uuid4().hex,
                pipeline=self.settings.wyoming_asr_pipeline,
                audio=wav,
                filename="wyoming.wav",
            )
            try:
                text = (await self._run(inp)).transcript or ""
            except EventError as exc:
                if exc.code != "no_speech":  # nothing said is an empty transcript, not an error
                    raise
        await self.channel.send(Transcript(text=text).event())
        return False

    # --- tts -------------------------------------------------------------------------------

    async def _speak(self, text: str, voice: str | None) -> None:
        inp = RunInput(
            session_id=uuid.uuid4().hex,
            pipeline=self.settings.wyoming_tts_pipeline,
            text=text,
            want_audio=True,
            voice=voice,
        )
        result = await self._run(inp)
        if not result.audio:
            raise EventError("no_audio_output", "the TTS pipeline produced no audio")
        audio = await asyncio.to_thread(decode_audio, result.audio)
        await self.channel.send(AudioStart(rate=audio.sample_rate, width=2, channels=1).event())
        for pcm in pcm16_chunks(audio.samples):
            event = AudioChunk(rate=audio.sample_rate, width=2, channels=1, audio=pcm).event()
            await self.channel.send(event)
        await self.channel.send(AudioStop().event())

    def _text(self, text: str) -> str:
        text = clean_text(text)
        if len(text) > self.settings.max_text_chars:
            raise EventError(
                "text_too_long", f"text is longer than {self.settings.max_text_chars} characters"
            )
        return text

    async def on_synthesize(self, event: Event) -> bool:
        """Speak one text (ignored inside a stream: streaming clients send it for old servers)."""
        if self.stream is not None:
            return True
        request = Synthesize.from_event(event)
        text = self._text(request.text)
        if not text.strip():
            await self.channel.send(AudioStart(rate=22050, width=2, channels=1).event())
            await self.channel.send(AudioStop().event())
            return True
        await self._speak(text, request.voice.name if request.voice else None)
        return True

    def stream_voice_for(self, requested: SynthesizeVoice | None) -> str | None:
        """The requested voice's name; each TTS provider maps it."""
        return requested.name if requested else None

    async def speak_sentence(self, text: str, voice: str | None) -> None:
        """One sentence of a stream through the TTS pipeline."""
        await self._speak(text, voice)

    # --- handle ----------------------------------------------------------------------------

    async def on_transcript(self, event: Event) -> bool:
        """Answer a user's text through the guarded conversation, with per-conversation memory."""
        said = Transcript.from_event(event)
        text = self._text(said.text)
        if not text.strip():
            raise EventError("empty_text", "transcript text is empty")
        session_id, conversation = session_for(said.context)
        inp = RunInput(
            session_id=session_id, pipeline=self.settings.wyoming_handle_pipeline, text=text
        )
        result = await self._run(inp)
        context = {"conversation_id": conversation}
        if result.blocked:
            await self.channel.send(NotHandled(text=result.response, context=context).event())
        else:
            await self.channel.send(Handled(text=result.response or "", context=context).event())
        return True


def make_server(settings: Settings) -> Callable[[ServiceState], WyomingServer | None]:
    """The factory `with_wyoming` calls at startup (None unless enabled)."""
    return server_factory(
        "orchestrator",
        settings,
        lambda _state: build_info(settings),
        lambda channel, state: MeshSession(channel, state, settings),
    )
