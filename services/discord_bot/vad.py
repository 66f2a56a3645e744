"""Speech probability backends for the segmenter (Silero ONNX shipped with faster-whisper)."""

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
