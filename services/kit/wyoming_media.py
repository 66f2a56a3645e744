"""Audio and text helpers for Wyoming sessions: PCM streams in, PCM chunks out, sentences."""

from __future__ import annotations

import re
import struct
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from wyoming.audio import AudioChunk, AudioStart
from wyoming.event import Event
from wyoming.tts import SynthesizeChunk, SynthesizeStart, SynthesizeStopped, SynthesizeVoice

from services.kit.audio import to_pcm16
from services.kit.wyoming import Channel, EventError

# Wyoming's reference servers send 1024 samples per audio-chunk (~46 ms at 22.05 kHz).
SAMPLES_PER_CHUNK = 1024
_MAX_RATE = 384_000
_MAX_CHANNELS = 32


@dataclass(frozen=True)
class PcmFormat:
    """Rate (Hz), width (bytes per sample) and channels of a raw PCM stream."""

    rate: int
    width: int
    channels: int

    @staticmethod
    def of(event: AudioStart | AudioChunk) -> PcmFormat:
        """The format an audio-start or audio-chunk declares, checked."""
        fmt = PcmFormat(int(event.rate), int(event.width), int(event.channels))
        if not (1 <= fmt.rate <= _MAX_RATE):
            raise EventError("invalid_audio", f"rate {fmt.rate} is outside 1-{_MAX_RATE} Hz")
        if fmt.width not in (1, 2, 3, 4):
            raise EventError("invalid_audio", f"width {fmt.width} is not 1, 2, 3 or 4 bytes")
        if not (1 <= fmt.channels <= _MAX_CHANNELS):
            raise EventError("invalid_audio", f"channels {fmt.channels} is outside 1-32")
        return fmt

    @property
    def frame_bytes(self) -> int:
        """Bytes per frame (one sample of every channel)."""
        return self.width * self.channels


def wav_file(fmt: PcmFormat, pcm: bytes) -> bytes:
    """Raw PCM wrapped in a WAV header, so the HTTP path's decoder converts it as it does."""
    pcm = pcm[: len(pcm) - len(pcm) % fmt.frame_bytes]  # a torn last frame is dropped
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(pcm),
        b"WAVE",
        b"fmt ",
        16,
        1,  # integer PCM; 8-bit WAV is unsigned, as Wyoming's own converter assumes
        fmt.channels,
        fmt.rate,
        fmt.rate * fmt.frame_bytes,
        fmt.frame_bytes,
        fmt.width * 8,
        b"data",
        len(pcm),
    )
    return header + pcm


@dataclass
class AudioCollector:
    """Collects one utterance's audio-chunks, within a byte limit, in one format."""

    max_bytes: int
    fmt: PcmFormat | None = None
    parts: list[bytes] = field(default_factory=list)
    size: int = 0

    def start(self, fmt: PcmFormat) -> None:
        """Begin a new utterance."""
        self.fmt, self.parts, self.size = fmt, [], 0

    def add(self, chunk: AudioChunk) -> None:
        """Append one chunk; a format change or too much audio is refused."""
        fmt = PcmFormat.of(chunk)
        if self.fmt is None:
            self.fmt = fmt  # audio-chunk without audio-start: accepted, as the reference does
        elif fmt != self.fmt:
            raise EventError("invalid_audio", "audio format changed inside one stream")
        if self.size + len(chunk.audio) > self.max_bytes:
            raise EventError(
                "audio_too_large", f"audio exceeds the limit of {self.max_bytes} bytes"
            )
        self.parts.append(chunk.audio)
        self.size += len(chunk.audio)

    def wav(self) -> bytes | None:
        """The utterance as a WAV file; None when no audio arrived."""
        if self.fmt is None or self.size < self.fmt.frame_bytes:
            return None
        return wav_file(self.fmt, b"".join(self.parts))

    def reset(self) -> None:
        """Forget the utterance."""
        self.fmt, self.parts, self.size = None, [], 0


def pcm16_chunks(
    samples: np.ndarray, samples_per_chunk: int = SAMPLES_PER_CHUNK
) -> Iterator[bytes]:
    """Float mono samples as 16-bit PCM pieces of `samples_per_chunk` samples."""
    pcm = to_pcm16(samples)
    step = samples_per_chunk * 2
    for offset in range(0, len(pcm), step):
        yield pcm[offset : offset + step]


# End of a sentence: . ! ? … (optionally closing quotes/brackets), then whitespace.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s+")
# Control characters break the phonemizer and are never speech; newlines and tabs separate.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    """Text safe to speak: control characters become spaces; unpaired surrogates refused."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EventError("invalid_unicode", "text holds an unpaired UTF-16 surrogate") from exc
    return _CONTROL.sub(" ", text)


@dataclass
class SentenceStream:
    """Text arriving in pieces, given back one complete sentence at a time."""

    max_chars: int
    pending: str = ""
    total: int = 0

    def add(self, text: str) -> list[str]:
        """Add a piece; return the sentences it completed."""
        text = clean_text(text)
        self.total += len(text)
        if self.total > self.max_chars:
            raise EventError("input_too_long", f"text exceeds {self.max_chars} characters")
        self.pending += text
        parts = _SENTENCE_END.split(self.pending)
        self.pending = parts.pop()
        return [p.strip() for p in parts if p.strip()]

    def finish(self) -> str:
        """Whatever is left once the text ended."""
        rest, self.pending = self.pending.strip(), ""
        return rest


class AudioInput:
    """Session mixin: `audio-start` / `audio-chunk` handlers collecting one utterance.

    The session creates `self.audio` and maps the two events to these handlers.
    """

    audio: AudioCollector

    def audio_handlers(self) -> dict[str, Callable[[Event], Awaitable[bool]]]:
        """The events this mixin answers, for the session's `handlers` table."""
        return {"audio-start": self.on_audio_start, "audio-chunk": self.on_audio_chunk}

    async def on_audio_start(self, event: Event) -> bool:
        """Begin an utterance in the announced format."""
        self.audio.start(PcmFormat.of(AudioStart.from_event(event)))
        return True

    async def on_audio_chunk(self, event: Event) -> bool:
        """Collect audio."""
        self.audio.add(AudioChunk.from_event(event))
        return True

    def take_wav(self) -> bytes | None:
        """The utterance so far as WAV (None without audio); the collector starts afresh."""
        wav = self.audio.wav()
        self.audio.reset()
        return wav


class StreamedText:
    """Session mixin: streamed text (`synthesize-start/-chunk/-stop`) spoken by sentence.

    After the last sentence comes `synthesize-stopped` (wyoming-piper's order). The session
    sets `channel` and `stream_chars` and says how to pick and speak a voice.
    """

    channel: Channel
    stream_chars: int  # most characters one stream may carry
    stream: SentenceStream | None = None
    stream_voice: str | None = None

    def stream_handlers(self) -> dict[str, Callable[[Event], Awaitable[bool]]]:
        """The events this mixin answers, for the session's `handlers` table."""
        return {
            "synthesize-start": self.on_stream_start,
            "synthesize-chunk": self.on_stream_chunk,
            "synthesize-stop": self.on_stream_stop,
        }

    @abstractmethod
    def stream_voice_for(self, requested: SynthesizeVoice | None) -> str | None:
        """The voice a stream speaks in; refuse an unknown one here, before any sentence."""

    @abstractmethod
    async def speak_sentence(self, text: str, voice: str | None) -> None:
        """Speak one complete sentence as its own audio-start / chunks / audio-stop."""

    async def on_stream_start(self, event: Event) -> bool:
        """Streaming text begins."""
        self.stream_voice = self.stream_voice_for(SynthesizeStart.from_event(event).voice)
        self.stream = SentenceStream(self.stream_chars)
        return True

    async def on_stream_chunk(self, event: Event) -> bool:
        """Speak each sentence as soon as it is complete."""
        if self.stream is None:
            raise EventError("no_stream", "synthesize-chunk before synthesize-start")
        for sentence in self.stream.add(SynthesizeChunk.from_event(event).text):
            await self.speak_sentence(sentence, self.stream_voice)
        return True

    async def on_stream_stop(self, event: Event) -> bool:
        """Speak the rest, then end the stream."""
        if self.stream is None:
            raise EventError("no_stream", "synthesize-stop before synthesize-start")
        rest = self.stream.finish()
        self.stream = None
        if rest:
            await self.speak_sentence(rest, self.stream_voice)
        await self.channel.send(SynthesizeStopped().event())
        return True
