"""Signal-to-noise estimate of a clip: speech-window power against non-speech-window power.

In kit, next to the VAD it uses: the orchestrator and the evaluation scripts have Silero
(faster-whisper's bundled model); the preprocessor's image does not.

Silero VAD (services/kit/vad.py) labels each 32 ms window; the noise power is the mean power of
the windows it is sure hold no speech, the speech power that of the windows it is sure hold
speech minus the noise under them. Needs some noise-only audio (a pause before or after the
question, as a microphone records): without enough of both kinds the estimate is None.
"""

from __future__ import annotations

import math

import numpy as np

from services.kit.vad import WINDOW, SpeechDetector

RATE = 16000
SPEECH_P = 0.5  # Silero's usual speech threshold
NOISE_P = 0.2  # only windows it is sure hold no speech count as noise
MIN_WINDOWS = 5  # 160 ms of each kind at least
FLOOR_DB = -20.0  # what a clip whose "speech" is no louder than its noise reports


def estimate_snr_db(samples: np.ndarray, detector: SpeechDetector) -> float | None:
    """SNR in dB of 16 kHz mono float32 audio, or None without enough speech and noise windows."""
    n = len(samples) // WINDOW
    if n < 2 * MIN_WINDOWS:
        return None
    windows = samples[: n * WINDOW].astype(np.float32, copy=False).reshape(n, WINDOW)
    probs = detector.probabilities(windows)
    power = np.mean(np.square(windows, dtype=np.float64), axis=1)
    speech, noise = power[probs >= SPEECH_P], power[probs < NOISE_P]
    if len(speech) < MIN_WINDOWS or len(noise) < MIN_WINDOWS:
        return None
    noise_power = float(np.mean(noise)) + 1e-12
    signal_power = float(np.mean(speech)) - noise_power
    if signal_power <= noise_power * 10 ** (FLOOR_DB / 10):
        return FLOOR_DB
    return 10 * math.log10(signal_power / noise_power)


def estimate_snr_db_percentile(samples: np.ndarray, quiet: float = 15.0) -> float | None:
    """SNR in dB from window powers alone: the quietest `quiet` % are noise, the loudest half
    speech plus noise (no VAD: for comparison with estimate_snr_db)."""
    n = len(samples) // WINDOW
    if n < 2 * MIN_WINDOWS:
        return None
    windows = samples[: n * WINDOW].astype(np.float64).reshape(n, WINDOW)
    power = np.sort(np.mean(np.square(windows), axis=1))
    noise_power = float(np.mean(power[: max(1, int(n * quiet / 100))])) + 1e-12
    signal_power = float(np.mean(power[n // 2 :])) - noise_power
    if signal_power <= noise_power * 10 ** (FLOOR_DB / 10):
        return FLOOR_DB
    return 10 * math.log10(signal_power / noise_power)
