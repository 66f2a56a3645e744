"""Audio and text helpers for Wyoming sessions: PCM streams in, PCM chunks out, sentences."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from wyoming.audio import AudioChunk, AudioStart

from services.kit.audio import to_pcm16
from services.kit.wyoming import EventError

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
