"""Run a 48 kHz frame-based native denoiser (DeepFilterNet, RNNoise) at any input rate."""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from services.preprocessor.engine import DenoiseStream

NATIVE_RATE = 48_000


class FrameKernel(ABC):
    """One native denoiser state that maps a frame of 48 kHz samples to a frame."""

    frame_length: int
    # Samples (at 48 kHz) by which the kernel's output trails its input.
    delay: int

    @abstractmethod
    def process_frame(self, frame: np.ndarray) -> np.ndarray:
        """Denoise exactly `frame_length` contiguous float32 samples."""

    @abstractmethod
    def close(self) -> None:
        """Free the native state."""


class _Resampler:
    """Streaming soxr resampler; its output is aligned and chunking-independent."""

    def __init__(self, src: int, dst: int, quality: str) -> None:
        import soxr

        self._rs = soxr.ResampleStream(src, dst, 1, dtype="float32", quality=quality)

    def __call__(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        return np.asarray(self._rs.resample_chunk(x, last=last), dtype=np.float32)


class FrameStream(DenoiseStream):
    """Resample to 48 kHz, run whole frames through the kernel, drop its delay, resample back."""

    def __init__(
        self,
        kernel: FrameKernel,
        sample_rate: int,
        quality: str = "HQ",
        release: Callable[[FrameKernel], None] | None = None,
    ) -> None:
        self._kernel = kernel
        self._release = release
        self._rate = sample_rate
        resampling = sample_rate != NATIVE_RATE
        self._up = _Resampler(sample_rate, NATIVE_RATE, quality) if resampling else None
        self._down = _Resampler(NATIVE_RATE, sample_rate, quality) if resampling else None
        self._pending = np.zeros(0, dtype=np.float32)  # 48 kHz input short of a whole frame
        self._to_drop = kernel.delay
        self._n_in = 0
        self._n_out = 0
        self._closed = False

    def _run(self, x48: np.ndarray, *, flush: bool) -> np.ndarray:
        k = self._kernel
        buf = np.concatenate([self._pending, x48]) if len(self._pending) else x48
        if flush:
            # Zeros push the last real samples through the kernel's delay line.
            total = len(buf) + k.delay
            buf = np.concatenate(
                [
                    buf,
                    np.zeros(
                        math.ceil(total / k.frame_length) * k.frame_length - len(buf), np.float32
                    ),
                ]
            )
        n_frames = len(buf) // k.frame_length
        out = np.empty(n_frames * k.frame_length, dtype=np.float32)
        for i in range(n_frames):
            a = i * k.frame_length
            out[a : a + k.frame_length] = k.process_frame(buf[a : a + k.frame_length])
        self._pending = buf[n_frames * k.frame_length :].copy()
        if self._to_drop:
            dropped = min(self._to_drop, len(out))
            out = out[dropped:]
            self._to_drop -= dropped
        return out

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Feed samples at the stream rate; return aligned output ready so far."""
        x = np.ascontiguousarray(samples, dtype=np.float32)
        self._n_in += len(x)
        x48 = self._up(x) if self._up else x
        y48 = self._run(x48, flush=False)
        y = self._down(y48) if self._down else y48
        self._n_out += len(y)
        return y

    def finish(self) -> np.ndarray:
        """Flush resamplers and kernel; trim to exactly the input length."""
        x48 = self._up(np.zeros(0, np.float32), last=True) if self._up else np.zeros(0, np.float32)
        y48 = self._run(x48, flush=True)
        y = self._down(y48, last=True) if self._down else y48
        want = self._n_in - self._n_out
        # Resampling rounds lengths by a sample or two; frame padding adds more: fit exactly.
        y = y[:want] if len(y) >= want else np.concatenate([y, np.zeros(want - len(y), np.float32)])
        self._n_out += len(y)
        return y

    def close(self) -> None:
        """Free or recycle the kernel."""
        if self._closed:
            return
        self._closed = True
        if self._release is not None:
            self._release(self._kernel)
        else:
            self._kernel.close()


@functools.lru_cache(maxsize=64)
def resampler_lag(src: int, dst: int, quality: str) -> int:
    """Worst lag (in `dst` samples) of a soxr stream, measured once on small odd-sized chunks.

    soxr buffers whole filter blocks, so its lag depends on rates and quality in ways it does
    not publish; tiny chunks give the largest lag (checked against 10 ms ... 1 s chunks).
    """
    if src == dst:
        return 0
    rs = _Resampler(src, dst, quality)
    chunk = np.zeros(7, dtype=np.float32)
    n_in = n_out = 0
    worst = 0.0
    for _ in range(src // 7):
        n_in += len(chunk)
        n_out += len(rs(chunk))
        worst = max(worst, n_in * dst / src - n_out)
    return math.ceil(worst)


def frame_lag_bound(kernel_frame: int, kernel_delay: int, sample_rate: int, quality: str) -> int:
    """Worst-case aligned-output lag of a FrameStream, in samples at `sample_rate`."""
    up = resampler_lag(sample_rate, NATIVE_RATE, quality)
    down = resampler_lag(NATIVE_RATE, sample_rate, quality)
    native = up + kernel_frame - 1 + kernel_delay
    # +1 for rounding between the two rates.
    return math.ceil(native * sample_rate / NATIVE_RATE) + down + 1
