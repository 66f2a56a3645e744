"""Speech probability per 32 ms window of 16 kHz audio: Silero VAD (ONNX) or an energy detector.

Used by the Discord bot's segmenter and the orchestrator's realtime server VAD.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

WINDOW = 512  # Silero's window at 16 kHz: 32 ms


class SpeechDetector(Protocol):
    """Speech probability for consecutive 512-sample windows of 16 kHz audio."""

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """(n, 512) float32 windows, in time order, to n probabilities in [0, 1]."""
        ...


class SileroDetector:
    """Silero VAD v6 through faster-whisper's bundled ONNX model (no torch needed).

    The model sees each window with 64 samples of the previous one as context, so the
    last window of a call is kept and prepended to the next call of the same stream.
    Make one detector per audio stream.
    """

    def __init__(self) -> None:
        from faster_whisper.vad import get_vad_model

        self._model: Any = get_vad_model()
        self._last: np.ndarray | None = None

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """Speech probability per window."""
        if len(windows) == 0:
            return np.zeros(0, dtype=np.float32)
        flat = windows.reshape(-1).astype(np.float32, copy=False)
        lead = 0
        if self._last is not None:
            flat = np.concatenate([self._last, flat])
            lead = 1
        self._last = flat[-WINDOW:].copy()
        probs = np.asarray(self._model(flat), dtype=np.float32).reshape(-1)
        return probs[lead:]


class EnergyDetector:
    """RMS energy over an adaptive noise floor, squashed to [0, 1] (the baseline Silero beats).

    The floor follows quiet windows slowly; a window `ratio_db` above it scores 0.5.
    """

    def __init__(self, ratio_db: float = 9.0, floor: float = 1e-3) -> None:
        self.ratio = 10 ** (ratio_db / 20)
        self.floor = floor

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """Speech score per window."""
        out = np.zeros(len(windows), dtype=np.float32)
        for i, window in enumerate(windows):
            rms = float(np.sqrt(np.mean(np.square(window, dtype=np.float64)))) + 1e-9
            score = rms / (self.floor * self.ratio)
            out[i] = score / (1.0 + score)
            if score < 1.0:  # only quiet windows move the floor: speech does not raise it
                self.floor = 0.95 * self.floor + 0.05 * max(rms, 1e-5)
        return out
