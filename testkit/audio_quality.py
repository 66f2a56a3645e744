"""Audio-quality support: a fixed spoken text, deterministic speech, SI-SDR and lag."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.kit.audio import resample
from testkit.helpers import PIPER_VOICE

TEXT = (
    "Please turn off the kitchen lights and set an alarm for seven thirty tomorrow morning. "
    "What is the weather going to be like in Boston on Saturday afternoon? "
    "Remind me to call my sister about the birthday dinner next week."
)
RATE = 16000


@dataclass(frozen=True)
class Speech:
    """Clean generated speech and the same speech with seeded white noise at 5 dB SNR."""

    text: str
    clean: np.ndarray
    noisy: np.ndarray
    rate: int


def deterministic_speech(text: str, rate: int) -> np.ndarray:
    """Piper speech with its sampling noise switched off, so every run hears the same clip.

    `testkit.helpers.synth_speech` samples Piper's noise, which moves Whisper's WER on one
    clip by several words from run to run: too much for a WER comparison to be stable.
    """
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(str(PIPER_VOICE))
    chunks = list(voice.synthesize(text, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)))
    audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    return resample(audio, int(chunks[0].sample_rate), rate)


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB."""
    ref = reference.astype(np.float64)
    est = estimate.astype(np.float64)
    target = (np.dot(est, ref) / np.dot(ref, ref)) * ref
    return float(10 * np.log10(np.sum(target**2) / np.sum((est - target) ** 2)))


def lag_of(reference: np.ndarray, estimate: np.ndarray) -> int:
    """Samples by which `estimate` trails `reference` (cross-correlation peak)."""
    n = len(reference) + len(estimate)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(estimate, size) * np.conj(np.fft.rfft(reference, size)), size)
    peak = int(np.argmax(corr))
    return peak if peak < size // 2 else peak - size
