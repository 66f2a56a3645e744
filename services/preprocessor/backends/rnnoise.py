"""RNNoise through `pyrnnoise`'s bundled library (lighter and weaker than DeepFilterNet)."""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from services.preprocessor.backends.framing import FrameKernel, FrameStream, frame_lag_bound
from services.preprocessor.engine import DenoiseEngine, DenoiseStream, EngineUnavailable

_FLOAT_P = ctypes.POINTER(ctypes.c_float)
# RNNoise's output trails its input by two 480-sample frames at 48 kHz, as measured.
RNNOISE_DELAY = 960
# RNNoise expects samples on the int16 scale.
_SCALE = 32768.0


class RnnoiseKernel(FrameKernel):
    """One RNNoise state."""

    delay = RNNOISE_DELAY

    def __init__(self, mod: Any) -> None:
        self._mod = mod
        self._st = mod.create()
        self.frame_length = int(mod.FRAME_SIZE)
        self._out = np.zeros(self.frame_length, dtype=np.float32)

    def process_frame(self, frame: np.ndarray) -> np.ndarray:
        """Denoise one 10 ms frame at 48 kHz."""
        inp = np.ascontiguousarray(frame * _SCALE, dtype=np.float32)
        # The C signature is (state, out, in).
        self._mod.lib.rnnoise_process_frame(
            self._st, self._out.ctypes.data_as(_FLOAT_P), inp.ctypes.data_as(_FLOAT_P)
        )
        return self._out / _SCALE

    def close(self) -> None:
        """Free the native state."""
        if self._st is not None:
            self._mod.destroy(self._st)
            self._st = None


class RNNoiseEngine(DenoiseEngine):
    """RNNoise at 48 kHz; other rates are resampled in and out."""

    name = "rnnoise"
    realtime = True
    model = "rnnoise"

    def __init__(self, quality: str = "HQ") -> None:
        self._quality = quality
        try:
            from pyrnnoise import rnnoise
        except (ImportError, OSError) as exc:
            raise EngineUnavailable("pyrnnoise not installed (extra 'rnnoise')") from exc
        self._mod = rnnoise
        self.frame_length = int(rnnoise.FRAME_SIZE)

    def open_stream(self, sample_rate: int) -> DenoiseStream:
        """A stream with a fresh RNNoise state."""
        return FrameStream(RnnoiseKernel(self._mod), sample_rate, self._quality)

    def max_lag_samples(self, sample_rate: int) -> int:
        """Frame buffering plus the model's delay."""
        return frame_lag_bound(self.frame_length, RNNOISE_DELAY, sample_rate, self._quality)
