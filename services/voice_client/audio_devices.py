"""Microphone and speaker access through the optional `sounddevice` package."""

from __future__ import annotations

from typing import Any

import numpy as np

from services.kit.audio import decode_audio

INSTALL_HINT = (
    "microphone/speaker access needs the optional 'sounddevice' package (and PortAudio): "
    "pip install sounddevice; or use --file IN.wav and --out REPLY.wav instead"
)


class AudioDeviceUnavailable(RuntimeError):
    """Recording or playback is not possible on this machine."""


def _sounddevice() -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: the module is there but PortAudio is not
        raise AudioDeviceUnavailable(f"{INSTALL_HINT} ({type(exc).__name__}: {exc})") from exc
    return sounddevice


def record(seconds: float, sample_rate: int = 16000) -> np.ndarray:
    """Record `seconds` of mono audio from the default microphone."""
    sd = _sounddevice()
    frames = int(seconds * sample_rate)
    data = sd.rec(frames, samplerate=sample_rate, channels=1, dtype="float32")
    sd.wait()
    return np.asarray(data, dtype=np.float32).reshape(-1)


def play_wav(wav: bytes) -> None:
    """Play WAV bytes on the default output device and wait until done."""
    sd = _sounddevice()
    audio = decode_audio(wav)
    sd.play(audio.samples, audio.sample_rate)
    sd.wait()
