"""Engine backends; each module imports its heavy library only when loaded."""

from __future__ import annotations

from services.preprocessor.engine import DenoiseEngine
from services.preprocessor.settings import Settings


def load_engine(settings: Settings) -> DenoiseEngine:
    """Load the engine the settings select (passthrough when preprocessing is disabled)."""
    name = settings.engine if settings.enabled else "passthrough"
    if name == "deepfilternet":
        from services.preprocessor.backends.deepfilternet import DeepFilterNetEngine

        return DeepFilterNetEngine(settings)
    if name == "rnnoise":
        from services.preprocessor.backends.rnnoise import RNNoiseEngine

        return RNNoiseEngine(settings.resample_quality)
    if name == "metricgan":
        from services.preprocessor.backends.metricgan import MetricGanEngine

        return MetricGanEngine(settings)
    from services.preprocessor.backends.passthrough import PassthroughEngine

    return PassthroughEngine()
