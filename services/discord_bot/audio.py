"""Conversions between Discord's 48 kHz stereo PCM16 and the 16 kHz mono the pipeline uses."""

from __future__ import annotations

import numpy as np

from services.kit.audio import decode_audio, resample, to_pcm16

DISCORD_RATE = 48_000
DISCORD_CHANNELS = 2
PIPELINE_RATE = 16_000
# One Discord frame: 20 ms of 48 kHz stereo 16-bit audio.
FRAME_BYTES = DISCORD_RATE // 50 * DISCORD_CHANNELS * 2


def pcm48_stereo_to_mono(pcm: bytes) -> np.ndarray:
    """Interleaved 48 kHz stereo PCM16 to 48 kHz mono float32 (trailing half-frames dropped)."""
    usable = len(pcm) - len(pcm) % (DISCORD_CHANNELS * 2)
    frames = np.frombuffer(pcm[:usable], dtype="<i2").reshape(-1, DISCORD_CHANNELS)
    return np.asarray(frames.astype(np.float32).mean(axis=1) / 32768.0, dtype=np.float32)


def pcm48_stereo_to_16k_mono(pcm: bytes) -> np.ndarray:
    """Interleaved 48 kHz stereo PCM16 to 16 kHz mono float32 (anti-aliased)."""
    return resample(pcm48_stereo_to_mono(pcm), DISCORD_RATE, PIPELINE_RATE)


def wav_to_pcm48_stereo(wav: bytes) -> bytes:
    """Any WAV (e.g. 22.05 kHz mono TTS output) to the 48 kHz stereo PCM16 Discord plays."""
    audio = decode_audio(wav, DISCORD_RATE)
    mono = to_pcm16(audio.samples)
    samples = np.frombuffer(mono, dtype="<i2")
    return np.repeat(samples, DISCORD_CHANNELS).astype("<i2").tobytes()


class StreamResampler:
    """48 kHz stereo PCM16 chunks in, mono blocks at `rate` (16 kHz) out, in fixed blocks.

    Discord delivers 20 ms frames; resampling each alone would put a filter edge every
    20 ms, so frames are gathered into `block_ms` blocks first.
    """

    def __init__(self, block_ms: int = 100, rate: int = PIPELINE_RATE) -> None:
        self._block = DISCORD_RATE * block_ms // 1000
        self._rate = rate
        self._pending = np.zeros(0, dtype=np.float32)

    def feed(self, pcm: bytes) -> np.ndarray:
        """Add PCM; return whatever 16 kHz audio complete blocks produced (may be empty)."""
        self._pending = np.concatenate([self._pending, pcm48_stereo_to_mono(pcm)])
        usable = len(self._pending) - len(self._pending) % self._block
        if usable == 0:
            return np.zeros(0, dtype=np.float32)
        ready, self._pending = self._pending[:usable], self._pending[usable:]
        return resample(ready, DISCORD_RATE, self._rate)

    def flush(self) -> np.ndarray:
        """Resample and return what is left."""
        ready, self._pending = self._pending, np.zeros(0, dtype=np.float32)
        if len(ready) == 0:
            return ready
        return resample(ready, DISCORD_RATE, self._rate)


class Upsampler:
    """24 kHz mono PCM16 (live reply deltas) to 48 kHz stereo PCM16, seamless across deltas.

    Linear interpolation carrying the last sample of the previous delta: resampling each
    100 ms delta alone would put a filter edge (a click) at every delta boundary.
    """

    def __init__(self) -> None:
        self._last: float | None = None

    def feed(self, pcm24: bytes) -> bytes:
        """One delta in, the same stretch of audio at 48 kHz stereo out."""
        x = np.frombuffer(pcm24[: len(pcm24) - len(pcm24) % 2], dtype="<i2").astype(np.float32)
        if x.size == 0:
            return b""
        prev = np.concatenate([[x[0] if self._last is None else self._last], x[:-1]])
        out = np.empty(2 * x.size, dtype=np.float32)
        out[0::2] = (prev + x) / 2  # the point half-way to this sample
        out[1::2] = x
        self._last = float(x[-1])
        return np.repeat(out.round().astype("<i2"), DISCORD_CHANNELS).tobytes()
