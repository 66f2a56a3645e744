"""Audio helpers: decode any common format to float32 mono, encode WAV/PCM16."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from math import gcd

import numpy as np

from services.kit.errors import ApiError

# Sizes a streaming writer puts in a RIFF header when it does not know the length yet.
_UNKNOWN_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}


@dataclass(frozen=True)
class Audio:
    """Mono float32 samples in [-1, 1] and their sample rate."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return len(self.samples) / float(self.sample_rate) if self.sample_rate else 0.0


def check_wav_complete(data: bytes) -> None:
    """Raise 400 if a RIFF/WAVE file declares more sample data than it carries."""
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if chunk_id == b"data":
            if size in _UNKNOWN_SIZES:
                return
            available = len(data) - (pos + 8)
            if available < size:
                raise ApiError(
                    400,
                    f"truncated WAV: header declares {size} bytes of audio, file has {available}",
                    param="file",
                    code="truncated_audio",
                )
            return
        pos += 8 + size + (size & 1)
    raise ApiError(400, "WAV file has no data chunk", param="file", code="invalid_audio")


def decode_audio(data: bytes, target_rate: int | None = None) -> Audio:
    """Decode WAV/FLAC/OGG/MP3 (anything libsndfile reads) to mono float32, optionally resampled."""
    import soundfile as sf

    if not data:
        raise ApiError(400, "audio file is empty", param="file", code="empty_audio")
    check_wav_complete(data)
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise ApiError(
            415,
            "unsupported or corrupt audio: expected WAV, FLAC, OGG/Opus or MP3"
            f" ({str(exc).splitlines()[0][:120]})",
            param="file",
            code="unsupported_audio",
        ) from exc
    if samples.shape[0] == 0:
        raise ApiError(400, "audio file contains no samples", param="file", code="empty_audio")
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if not np.isfinite(mono).all():
        # Float WAVs can carry NaN/Inf; models turn them into garbage at full CPU cost.
        raise ApiError(
            400, "audio contains NaN or infinite samples", param="file", code="invalid_audio"
        )
    if target_rate and rate != target_rate:
        mono = resample(mono, int(rate), target_rate)
        rate = target_rate
    return Audio(mono, int(rate))


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Polyphase resampling (anti-aliased) between integer rates."""
    if src_rate == dst_rate:
        return samples.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = gcd(src_rate, dst_rate)
    out = resample_poly(samples.astype(np.float32, copy=False), dst_rate // g, src_rate // g)
    return np.asarray(out, dtype=np.float32)


def to_pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] to little-endian 16-bit PCM bytes (clipped)."""
    clipped = np.clip(samples, -1.0, 1.0)
    pcm: bytes = (clipped * 32767.0).round().astype("<i2").tobytes()
    return pcm


def from_pcm16(data: bytes) -> np.ndarray:
    """Little-endian 16-bit PCM bytes to float32 samples; odd lengths are a 400."""
    if len(data) % 2:
        raise ApiError(400, "PCM16 data must have an even number of bytes", code="invalid_pcm")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def wav_header(sample_rate: int, data_bytes: int) -> bytes:
    """The 44-byte header of a mono PCM16 WAV; 0xFFFFFFFF sizes mean "unknown" (streaming)."""
    riff = 0xFFFFFFFF if data_bytes == 0xFFFFFFFF else 36 + data_bytes
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        riff,
        b"WAVE",
        b"fmt ",
        16,
        1,
        1,
        sample_rate,
        sample_rate * 2,
        2,
        16,
        b"data",
        data_bytes,
    )


def encode_wav(samples: np.ndarray, sample_rate: int) -> bytes:
    """Mono float samples to a PCM16 WAV file."""
    pcm = to_pcm16(samples)
    return wav_header(sample_rate, len(pcm)) + pcm


def encode_audio(samples: np.ndarray, sample_rate: int, fmt: str) -> tuple[bytes, str]:
    """Encode to wav, pcm, flac or ogg; returns (bytes, media type)."""
    if fmt == "wav":
        return encode_wav(samples, sample_rate), "audio/wav"
    if fmt == "pcm":
        return to_pcm16(samples), "audio/pcm"
    import soundfile as sf

    buf = io.BytesIO()
    if fmt == "flac":
        sf.write(buf, np.clip(samples, -1, 1), sample_rate, format="FLAC", subtype="PCM_16")
        return buf.getvalue(), "audio/flac"
    if fmt in ("ogg", "opus"):
        # libsndfile writes Opus only at 8/12/16/24/48 kHz.
        rate = sample_rate
        data = samples
        if fmt == "opus" and rate not in (8000, 12000, 16000, 24000, 48000):
            data, rate = resample(samples, sample_rate, 48000), 48000
        subtype = "OPUS" if fmt == "opus" else "VORBIS"
        sf.write(buf, np.clip(data, -1, 1), rate, format="OGG", subtype=subtype)
        return buf.getvalue(), "audio/ogg" if fmt == "ogg" else "audio/opus"
    if fmt == "mp3":
        sf.write(buf, np.clip(samples, -1, 1), sample_rate, format="MP3")
        return buf.getvalue(), "audio/mpeg"
    raise ApiError(400, f"unsupported audio format {fmt!r}", param="response_format")
