"""Classifier backends and the one loader; each backend imports its heavy library inside."""

from __future__ import annotations

from services.guardrails.engine import (
    Classifiers,
    ClassifierUnavailableError,
    Detector,
    TextClassifier,
)
from services.guardrails.settings import Settings


def load_engine(settings: Settings) -> Classifiers:
    """Load every classifier the settings turn on (blocking; call from a worker thread)."""
    return Classifiers(_toxicity(settings), _ngram(settings), _injection_model(settings))


def _toxicity(settings: Settings) -> TextClassifier | None:
    backend = settings.toxicity_backend
    if backend == "none":
        return None
    if backend == "profanity-check":
        from services.guardrails.backends.profanity import ProfanityCheckClassifier

        return ProfanityCheckClassifier()
    from services.guardrails.backends.transformers_classifier import TransformersClassifier

    return TransformersClassifier(
        settings.toxicity_model,
        device=settings.device,
        max_tokens=settings.toxicity_max_tokens,
        multi_label=True,
    )


def _ngram(settings: Settings) -> Detector | None:
    """The built-in n-gram injection classifier and its threshold (None when turned off)."""
    if settings.injection_classifier == "none":
        return None
    from services.guardrails.backends.ngram import DEFAULT_PATH, NgramClassifier

    path = settings.injection_ngram_path or str(DEFAULT_PATH)
    try:
        clf = NgramClassifier.load(path, settings.injection_min_chars)
    except FileNotFoundError as exc:
        raise ClassifierUnavailableError(
            f"injection classifier artefact {path} is missing: run "
            "`python scripts/train_injection_classifier.py`, or set "
            "GUARD_INJECTION_CLASSIFIER=none to run on rules alone"
        ) from exc
    threshold = settings.injection_ngram_threshold
    return Detector(clf, clf.threshold if threshold is None else threshold)


def _injection_model(settings: Settings) -> Detector | None:
    """The optional prompt-injection model (None when GUARD_INJECTION_MODEL is empty)."""
    if not settings.injection_model:
        return None
    from services.guardrails.backends.transformers_classifier import TransformersClassifier

    model = TransformersClassifier(
        settings.injection_model,
        device=settings.device,
        max_tokens=settings.toxicity_max_tokens,
        multi_label=False,
    )
    return Detector(model, settings.injection_threshold)
