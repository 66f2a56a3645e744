"""The stt service over Wyoming (Home Assistant's speech-to-text protocol), beside the HTTP API.

`describe` -> `info` (one ASR program, the loaded Whisper model and its languages);
`transcribe` + `audio-start` / `audio-chunk`* / `audio-stop` -> `transcript-start`, one
`transcript-chunk` per decoded segment, `transcript`, `transcript-stop`; then the connection
closes, as wyoming-faster-whisper does. Audio goes through the HTTP path's `Transcriber`
(same decoding, resampling, limits, silence gate and queue).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Info

from services.kit import ApiError, ServiceState
from services.kit.wyoming import (
    Channel,
    EventError,
    Session,
    WyomingServer,
    described,
    server_factory,
)
from services.kit.wyoming_media import AudioCollector, AudioInput
from services.stt.deps import Deps
from services.stt.settings import Settings

log = logging.getLogger("stt.wyoming")

PROGRAM = "audio-orchestrator-stt"
ATTRIBUTION = Attribution(
    name="OpenAI Whisper via faster-whisper", url="https://github.com/SYSTRAN/faster-whisper"
)


def language_code(requested: str | None) -> str | None:
    """A Whisper language code from what a client sends (`en`, `en-US`, `en_US`)."""
    if not requested:
        return None
    return requested.replace("_", "-").split("-")[0].strip().lower() or None


def build_info(settings: Settings, languages: frozenset[str]) -> Info:
    """The info event: one ASR program with the loaded model and its languages."""
    model = settings.model_id()
    return Info(
        asr=[
            AsrProgram(
                name=PROGRAM,
                description="Whisper speech-to-text of the Audio Orchestrator mesh",
                **described(ATTRIBUTION, "0.1.0"),
                supports_transcript_streaming=True,
                models=[
                    AsrModel(
                        name=model,
                        description=f"Whisper {model} ({settings.engine})",
                        **described(ATTRIBUTION),
                        languages=sorted(languages),
                    )
                ],
            )
        ]
    )


class SttSession(AudioInput, Session):
    """One client: collects an utterance and answers its transcript."""

    def __init__(self, channel: Channel, state: ServiceState, settings: Settings) -> None:
        super().__init__(channel)
        self.state = state
        self.settings = settings
        self.language: str | None = None
        self.audio = AudioCollector(settings.max_upload_bytes)

    def handlers(self) -> dict[str, Callable[[Event], Awaitable[bool]]]:
        """The ASR events this session answers."""
        return {
            "transcribe": self.on_transcribe,
            **self.audio_handlers(),
            "audio-stop": self.on_audio_stop,
        }

    async def on_transcribe(self, event: Event) -> bool:
        """Remember the language; the model name is accepted as is (one model per service)."""
        self.language = language_code(Transcribe.from_event(event).language)
        return True

    async def on_audio_stop(self, event: Event) -> bool:
        """Transcribe what was collected and answer; then close, as the reference server does."""
        wav = self.take_wav()
        transcriber = self.state.require(Deps).service
        started = time.perf_counter()
        if wav is None:
            text, language, segments = "", self.language, []
        else:
            try:
                options = transcriber.options(language=self.language)
                done = await transcriber.transcribe(wav, options)
            except ApiError as exc:
                raise EventError(exc.code or "transcription_failed", exc.message) from exc
            result = done.transcription
            text, language = result.text, result.language
            segments = [s.text for s in result.segments]
        await self.channel.send(TranscriptStart(language=language).event())
        for piece in segments:
            await self.channel.send(TranscriptChunk(text=piece).event())
        await self.channel.send(Transcript(text=text, language=language).event())
        await self.channel.send(TranscriptStop().event())
        log.info(
            "wyoming transcript sent",
            extra={
                "ms": round((time.perf_counter() - started) * 1000, 1),
                "segments": len(segments),
            },
        )
        return False


def make_server(settings: Settings) -> Callable[[ServiceState], WyomingServer | None]:
    """The factory `with_wyoming` calls at startup (None when the endpoint is disabled)."""

    def info(state: ServiceState) -> Info:
        return build_info(settings, state.require(Deps).service.engine.languages)

    return server_factory(
        "stt", settings, info, lambda channel, state: SttSession(channel, state, settings)
    )
