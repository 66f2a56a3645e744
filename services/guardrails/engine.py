"""The classifier interface every toxicity/injection backend implements, and the set loaded."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

from services.kit.engine import Engine, EngineUnavailableError

SELF_CHECK_TEXT = "Thank you, that was very helpful."


class ClassifierUnavailableError(EngineUnavailableError):
    """A configured classifier could not be loaded or failed its self-check."""


class TextClassifier(Engine, Protocol):
    """Scores texts in [0, 1]: how likely each is in the class the classifier guards against.

    `name` is the backend (ngram, profanity-check, transformers), `model` what it loaded.
    """

    model: str

    def scores(self, texts: list[str]) -> list[float]:
        """One score per text, 0 = clean, 1 = certainly in the guarded class."""
        ...


def check_scores(classifier: TextClassifier) -> None:
    """Score a fixed sentence; raise unless the classifier returns one score in [0, 1]."""
    result = classifier.scores([SELF_CHECK_TEXT])
    if len(result) != 1 or not 0.0 <= result[0] <= 1.0:
        raise ClassifierUnavailableError(f"{classifier.name} self-check returned {result!r}")


class ClassifierBase(ABC):
    """What every classifier backend shares: its readiness facts and the self-check."""

    name: str
    model: str

    @property
    def details(self) -> dict[str, object]:
        """Readiness facts: the model loaded."""
        return {"model": self.model}

    def self_check(self) -> None:
        """Score a fixed sentence (`check_scores`)."""
        check_scores(self)

    @abstractmethod
    def scores(self, texts: list[str]) -> list[float]:
        """One score per text, 0 = clean, 1 = certainly in the guarded class."""


@dataclass(frozen=True)
class Detector:
    """An injection classifier and the score at or above which it blocks."""

    classifier: TextClassifier
    threshold: float


class Classifiers:
    """The guardrails' engine: every classifier the settings turn on (each may be off).

    Named after the toxicity classifier, which is what `/health/ready` reports as engine and
    model; without one the service runs on rules (and the injection classifiers) alone.
    """

    def __init__(
        self, toxicity: TextClassifier | None, ngram: Detector | None, model: Detector | None
    ) -> None:
        self.toxicity = toxicity
        self.ngram = ngram
        self.injection_model = model
        self.name = toxicity.name if toxicity else "rules"
        self.model = toxicity.model if toxicity else None

    @property
    def injection(self) -> list[Detector]:
        """The injection classifiers, cheapest first."""
        return [d for d in (self.ngram, self.injection_model) if d is not None]

    @property
    def details(self) -> dict[str, object]:
        """Readiness facts: which injection classifiers run, and at what threshold."""
        out: dict[str, object] = {}
        if self.ngram is not None:
            out["injection_classifier"] = f"ngram (threshold {self.ngram.threshold:.3f})"
        if self.injection_model is not None:
            out["injection_model"] = self.injection_model.classifier.model
        return out

    def self_check(self) -> None:
        """Score a fixed sentence with every classifier; raise at the first that fails."""
        for classifier in (self.toxicity, *(d.classifier for d in self.injection)):
            if classifier is not None:
                classifier.self_check()
