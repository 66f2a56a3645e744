"""The classifier interface every toxicity/injection backend implements, and its factory."""

from __future__ import annotations

from typing import Protocol

from services.guardrails.settings import Settings


class TextClassifier(Protocol):
    """Scores texts in [0, 1]: how likely each is in the class the classifier guards against."""

    engine: str
    model: str

    def scores(self, texts: list[str]) -> list[float]:
        """One score per text, 0 = clean, 1 = certainly in the guarded class."""
        ...


def load_toxicity(settings: Settings) -> TextClassifier | None:
    """Load the toxicity backend the settings name (blocking; None for 'none')."""
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


def load_ngram(settings: Settings) -> tuple[TextClassifier, float] | None:
    """The built-in n-gram injection classifier and its threshold (None when turned off)."""
    if settings.injection_classifier == "none":
        return None
    from services.guardrails.backends.ngram import DEFAULT_PATH, NgramClassifier

    path = settings.injection_ngram_path or str(DEFAULT_PATH)
    try:
        clf = NgramClassifier.load(path, settings.injection_min_chars)
    except FileNotFoundError as exc:
        raise RuntimeError(
            f"injection classifier artefact {path} is missing: run "
            "`python scripts/train_injection_classifier.py`, or set "
            "GUARD_INJECTION_CLASSIFIER=none to run on rules alone"
        ) from exc
    threshold = settings.injection_ngram_threshold
    return clf, clf.threshold if threshold is None else threshold


def load_injection(settings: Settings) -> TextClassifier | None:
    """Load the optional prompt-injection classifier (blocking; None when not configured)."""
    if not settings.injection_model:
        return None
    from services.guardrails.backends.transformers_classifier import TransformersClassifier

    return TransformersClassifier(
        settings.injection_model,
        device=settings.device,
        max_tokens=settings.toxicity_max_tokens,
        multi_label=False,
    )


def self_check(classifier: TextClassifier) -> float:
    """Score a fixed sentence; raise unless the classifier returns one finite score in [0, 1]."""
    result = classifier.scores(["Thank you, that was very helpful."])
    if len(result) != 1 or not 0.0 <= result[0] <= 1.0:
        raise RuntimeError(f"{classifier.engine} self-check returned {result!r}")
    return result[0]
