"""tts-piper over Wyoming (Home Assistant's text-to-speech protocol), beside the HTTP API.

`describe` -> `info` with every loaded voice and its language. `synthesize` -> one
`audio-start`, `audio-chunk`s of 1024 samples as each sentence is spoken, `audio-stop`.
Streaming (`synthesize-start`, `synthesize-chunk`*, `synthesize-stop`): each sentence is
spoken as soon as its text is complete, as its own audio-start/chunks/stop, then
`synthesize-stopped` (wyoming-piper's order; the `synthesize` a streaming client also sends
for older servers is ignored). Synthesis runs in the HTTP path's bounded queue.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import Attribution, Info, TtsProgram, TtsVoice
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStopped,
    SynthesizeVoice,
)

from services.kit import ApiError, ServiceState
from services.kit.wyoming import Channel, EventError, Session, WyomingServer, WyomingService
from services.kit.wyoming_media import SentenceStream, clean_text, pcm16_chunks
from services.tts_piper.deps import Deps
from services.tts_piper.settings import Settings

log = logging.getLogger("tts_piper.wyoming")

PROGRAM = "audio-orchestrator-piper"
ATTRIBUTION = Attribution(name="rhasspy", url="https://github.com/rhasspy/piper")
_NAME_LANGUAGE = re.compile(r"^([a-z]{2,3}_[A-Z]{2})[-_]")


def voice_languages(voice_files: list[Path]) -> dict[str, str]:
    """Voice name -> language code from each voice's .onnx.json (else its name's prefix)."""
    out: dict[str, str] = {}
    for onnx in voice_files:
        name = onnx.name.removesuffix(".onnx")
        code = ""
        try:
            config = json.loads(Path(f"{onnx}.json").read_text(encoding="utf-8"))
            code = str((config.get("language") or {}).get("code") or "")
        except (OSError, ValueError):
            pass
        if not code:
            match = _NAME_LANGUAGE.match(name)
            code = match.group(1) if match else "en_US"
        out.setdefault(name, code)
    return out


def build_info(voices: list[str], languages: dict[str, str]) -> Info:
    """The info event: one TTS program with every loaded voice."""
    return Info(
        tts=[
            TtsProgram(
                name=PROGRAM,
                description="Piper text-to-speech of the Audio Orchestrator mesh",
                attribution=ATTRIBUTION,
                installed=True,
                version="0.1.0",
                supports_synthesize_streaming=True,
                voices=[
                    TtsVoice(
                        name=name,
                        description=name,
                        attribution=ATTRIBUTION,
                        installed=True,
                        version=None,
                        languages=[languages.get(name, "en_US")],
                    )
                    for name in voices
                ],
            )
        ]
    )


class TtsSession(Session):
    """One client: speaks `synthesize` requests and streamed text."""

    def __init__(self, channel: Channel, state: ServiceState, settings: Settings) -> None:
        super().__init__(channel)
        self.state = state
        self.settings = settings
        self.stream: SentenceStream | None = None
        self.stream_voice: SynthesizeVoice | None = None

    def handlers(self) -> dict[str, Callable[[Event], Awaitable[bool]]]:
        """The TTS events this session answers."""
        return {
            "synthesize": self.on_synthesize,
            "synthesize-start": self.on_stream_start,
            "synthesize-chunk": self.on_stream_chunk,
            "synthesize-stop": self.on_stream_stop,
        }

    def _voice(self, requested: SynthesizeVoice | None) -> str:
        speaker = self.state.require(Deps).service
        if requested is None or not requested.name:
            return speaker.engine.voices()[0]
        try:
            return speaker.voice(requested.name)
        except ApiError as exc:
            raise EventError(exc.code or "unknown_voice", exc.message) from exc

    async def _speak(self, text: str, voice: str, *, start: bool, stop: bool) -> None:
        """Speak `text`, sending audio-start (if asked), chunks as sentences finish, audio-stop."""
        speaker = self.state.require(Deps).service
        rate = speaker.engine.sample_rate(voice)
        if start:
            await self.channel.send(AudioStart(rate=rate, width=2, channels=1).event())
        if text.strip():
            started = time.perf_counter()
            chunks = speaker.chunks(text, voice, 1.0)
            try:
                async for samples in chunks:
                    for pcm in pcm16_chunks(samples):
                        event = AudioChunk(rate=rate, width=2, channels=1, audio=pcm).event()
                        await self.channel.send(event)
            except ApiError as exc:  # queue full
                raise EventError(exc.code or "synthesis_failed", exc.message) from exc
            finally:
                await chunks.aclose()
            log.info(
                "wyoming speech sent",
                extra={"ms": round((time.perf_counter() - started) * 1000, 1), "chars": len(text)},
            )
        if stop:
            await self.channel.send(AudioStop().event())

    async def on_synthesize(self, event: Event) -> bool:
        """One request: the whole text as one audio stream."""
        if self.stream is not None:
            return True  # sent beside a stream for servers without streaming: already spoken
        request = Synthesize.from_event(event)
        text = clean_text(request.text)
        if len(text) > self.settings.max_chars:
            raise EventError("input_too_long", f"text exceeds {self.settings.max_chars} characters")
        await self._speak(text, self._voice(request.voice), start=True, stop=True)
        return True

    async def on_stream_start(self, event: Event) -> bool:
        """Streaming text begins."""
        start = SynthesizeStart.from_event(event)
        self._voice(start.voice)  # an unknown voice is refused now, not at the first sentence
        self.stream_voice = start.voice
        self.stream = SentenceStream(self.settings.max_chars)
        return True

    async def on_stream_chunk(self, event: Event) -> bool:
        """Speak every sentence this text completes."""
        if self.stream is None:
            raise EventError("no_stream", "synthesize-chunk before synthesize-start")
        voice = self._voice(self.stream_voice)
        for sentence in self.stream.add(SynthesizeChunk.from_event(event).text):
            await self._speak(sentence, voice, start=True, stop=True)
        return True

    async def on_stream_stop(self, event: Event) -> bool:
        """Speak what is left, then say the stream is done."""
        if self.stream is None:
            raise EventError("no_stream", "synthesize-stop before synthesize-start")
        rest = self.stream.finish()
        voice = self._voice(self.stream_voice)
        self.stream = None
        if rest:
            await self._speak(rest, voice, start=True, stop=True)
        await self.channel.send(SynthesizeStopped().event())
        return True


def make_server(settings: Settings) -> Callable[[ServiceState], WyomingServer | None]:
    """The factory `with_wyoming` calls at startup (None when the endpoint is disabled)."""

    def make(state: ServiceState) -> WyomingServer | None:
        if not settings.wyoming_enabled:
            return None
        languages: dict[str, str] = {}

        def not_ready() -> str | None:
            return None if state.readiness.ready else state.readiness.reason

        def info() -> Info:
            engine = state.require(Deps).service.engine
            if not languages:  # once: the voice files do not change while the service runs
                languages.update(voice_languages(engine.voice_files))
            return build_info(engine.voices(), languages)

        return WyomingServer(
            "tts-piper",
            WyomingService(not_ready, info, lambda ch: TtsSession(ch, state, settings)),
            host=settings.wyoming_host,
            port=settings.wyoming_port,
            allow=settings.wyoming_allow,
        )

    return make
