"""MetricGAN+ through speechbrain (needs torchaudio; its own extra and image)."""

from __future__ import annotations

from typing import Any

import numpy as np

from services.kit.audio import resample
from services.preprocessor.engine import DenoiseEngine, DenoiseStream, EngineUnavailable
from services.preprocessor.settings import Settings

MODEL_RATE = 16_000


def _import_enhancer() -> Any:
    try:
        from speechbrain.inference.enhancement import SpectralMaskEnhancement
    except ImportError as exc:
        raise EngineUnavailable("speechbrain not installed (extra 'metricgan')") from exc
    return SpectralMaskEnhancement


class _ClipStream(DenoiseStream):
    """MetricGAN+ sees the whole clip: input is buffered and enhanced at `finish`."""

    def __init__(self, engine: MetricGanEngine, sample_rate: int) -> None:
        self._engine = engine
        self._rate = sample_rate
        self._parts: list[np.ndarray] = []

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Buffer; nothing is ready before the end."""
        self._parts.append(np.asarray(samples, dtype=np.float32))
        return np.zeros(0, dtype=np.float32)

    def finish(self) -> np.ndarray:
        """Enhance everything buffered."""
        x = np.concatenate(self._parts) if self._parts else np.zeros(0, np.float32)
        self._parts = []
        return self._engine.enhance(x, self._rate) if len(x) else x


class MetricGanEngine(DenoiseEngine):
    """speechbrain SpectralMaskEnhancement (MetricGAN+) at 16 kHz."""

    name = "metricgan"
    realtime = False

    def __init__(self, settings: Settings) -> None:
        enhancer_cls = _import_enhancer()
        import torch

        self._torch = torch
        kwargs: dict[str, Any] = {"source": settings.metricgan_source}
        if settings.metricgan_savedir:
            kwargs["savedir"] = settings.metricgan_savedir
        self._model = enhancer_cls.from_hparams(**kwargs)
        self.model = settings.metricgan_source

    def enhance(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Enhance one clip; output has the input's rate and length."""
        x16 = resample(samples, sample_rate, MODEL_RATE)
        with self._torch.no_grad():
            batch = self._torch.from_numpy(np.ascontiguousarray(x16))[None, :]
            y = self._model.enhance_batch(batch, lengths=self._torch.tensor([1.0]))
        y16 = np.asarray(y[0].cpu().numpy(), dtype=np.float32).reshape(-1)
        out = resample(y16, MODEL_RATE, sample_rate)
        n = len(samples)
        return out[:n] if len(out) >= n else np.pad(out, (0, n - len(out)))

    def open_stream(self, sample_rate: int) -> DenoiseStream:
        """A whole-clip stream (MetricGAN+ is not a streaming model)."""
        return _ClipStream(self, sample_rate)

    def max_lag_samples(self, sample_rate: int) -> int:
        """Unbounded: output comes only at the end; WebSocket streaming is refused."""
        return 0
