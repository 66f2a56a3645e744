"""Engine backends and the one loader; each backend imports its heavy libraries only inside."""

from __future__ import annotations

from services.llm.backends.common import pick_engine
from services.llm.engine import ChatEngine
from services.llm.settings import Settings


def load_engine(settings: Settings) -> ChatEngine:
    """Load the engine LLM_ENGINE picks for LLM_MODEL (blocking; call from a worker thread)."""
    # Backends are imported here so the app stays importable without their libraries.
    if pick_engine(settings.engine, settings.model) == "ctranslate2":
        from services.llm.backends.ctranslate2_backend import CTranslate2ChatEngine

        return CTranslate2ChatEngine.load(
            settings.model,
            served_name=settings.served_model_name,
            device=settings.device,
            compute_type=settings.ct2_compute_type,
            threads=settings.ct2_threads,
            # One CTranslate2 worker per generation slot, so the slots really run side by side.
            parallel=settings.max_concurrency,
        )
    from services.llm.backends.transformers_backend import TransformersChatEngine

    return TransformersChatEngine.load(
        settings.model,
        served_name=settings.served_model_name,
        device=settings.device,
        torch_threads=settings.torch_threads,
    )
