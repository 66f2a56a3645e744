"""The classifiers as one engine: the loader, readiness details and the self-check."""

from __future__ import annotations

import pytest

from services.guardrails.backends import load_engine
from services.guardrails.engine import ClassifierBase, ClassifierUnavailableError
from services.guardrails.settings import Settings


class Fixed(ClassifierBase):
    """Answers one fixed score per text (a broken model when it is outside [0, 1])."""

    name = "fixed"
    model = "fixed-model"

    def __init__(self, score: float) -> None:
        self.score = score

    def scores(self, texts: list[str]) -> list[float]:
        return [self.score for _ in texts]


def test_loader_builds_what_the_settings_turn_on() -> None:
    classifiers = load_engine(
        Settings(toxicity_backend="profanity-check", injection_ngram_threshold=0.5)
    )
    assert (classifiers.name, classifiers.model) == ("profanity-check", "alt-profanity-check")
    assert [d.classifier.name for d in classifiers.injection] == ["ngram"]
    assert classifiers.details == {"injection_classifier": "ngram (threshold 0.500)"}
    classifiers.self_check()  # the real profanity and n-gram models score the fixed sentence
    rules_only = load_engine(Settings(toxicity_backend="none", injection_classifier="none"))
    assert (rules_only.name, rules_only.model, rules_only.injection) == ("rules", None, [])
    assert rules_only.details == {}
    rules_only.self_check()


@pytest.mark.parametrize("score", [-0.1, 1.5, float("nan")])
def test_a_classifier_scoring_outside_0_1_fails_its_self_check(score: float) -> None:
    with pytest.raises(ClassifierUnavailableError, match="fixed self-check returned"):
        Fixed(score).self_check()
    Fixed(0.25).self_check()
