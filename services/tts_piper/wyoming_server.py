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
from wyoming.tts import Synthesize, SynthesizeVoice

from services.kit import ApiError, ServiceState
from services.kit.wyoming import (
    Channel,
    EventError,
    Session,
    WyomingServer,
    described,
    server_factory,
)
from services.kit.wyoming_media import StreamedText, clean_text, pcm16_chunks
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
                **described(ATTRIBUTION, "0.1.0"),
                supports_synthesize_streaming=True,
                voices=[
                    TtsVoice(
                        name=name,
                        description=name,
                        **described(ATTRIBUTION),
                        languages=[languages.get(name, "en_US")],
                    )
                    for name in voices
                ],
            )
        ]
    )


class TtsSession(StreamedText, Session):
    """One client: speaks `synthesize` requests and streamed text."""

    def __init__(self, channel: Channel, state: ServiceState, settings: Settings) -> None:
        super().__init__(channel)
        self.state = state
        self.settings = settings
        self.stream_chars = settings.max_chars

    def handlers(self) -> dict[str, Callable[[Event], Awaitable[bool]]]:
        """The TTS events this session answers."""
        return {"synthesize": self.on_synthesize, **self.stream_handlers()}

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

    def stream_voice_for(self, requested: SynthesizeVoice | None) -> str:
        """The loaded voice a stream speaks in; an unknown one is refused before any text."""
        return self._voice(requested)

    async def speak_sentence(self, text: str, voice: str | None) -> None:
        """Each sentence of a stream is its own audio-start / chunks / audio-stop."""
        await self._speak(text, voice or self._voice(None), start=True, stop=True)


def make_server(settings: Settings) -> Callable[[ServiceState], WyomingServer | None]:
    """The factory `with_wyoming` calls at startup (None when the endpoint is disabled)."""
    languages: dict[str, str] = {}

    def info(state: ServiceState) -> Info:
        engine = state.require(Deps).service.engine
        if not languages:  # once: the voice files do not change while the service runs
            languages.update(voice_languages(engine.voice_files))
            for name in engine.voices():
                languages.setdefault(name, voice_languages([Path(name + ".onnx")])[name])
        return build_info(engine.voices(), languages)

    return server_factory(
        "tts-piper", settings, info, lambda channel, state: TtsSession(channel, state, settings)
    )
