"""alt-profanity-check: a small trained sklearn model shipped inside the PyPI package."""

from __future__ import annotations

from services.guardrails.engine import ClassifierBase


class ProfanityCheckClassifier(ClassifierBase):
    """Toxicity scores from alt-profanity-check's linear SVM (offline, ~ms per text)."""

    name = "profanity-check"
    model = "alt-profanity-check"

    def __init__(self) -> None:
        from profanity_check import predict_prob

        self._predict_prob = predict_prob

    def scores(self, texts: list[str]) -> list[float]:
        """Probability of profanity/toxicity per text."""
        return [float(p) for p in self._predict_prob(texts)]
