"""Prompt-injection classifier: char + word n-gram TF-IDF and logistic regression (CPU, ~ms).

The artefact (a gzipped JSON file, no pickle) is built by scripts/train_injection_classifier.py
from the public TUNE corpora and ships in the repository; its threshold was calibrated there.
Long texts are scored in overlapping windows and the highest window counts, so one sentence
planted in a pasted document is not diluted by the rest of it.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

from services.guardrails.normalize import marker_view

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "artefacts" / "injection_ngram.json.gz"
WINDOW_CHARS = 600
STRIDE_CHARS = 300


def windows(text: str, size: int = WINDOW_CHARS, stride: int = STRIDE_CHARS) -> list[str]:
    """The text itself when short, else overlapping windows of `size` characters."""
    if len(text) <= size:
        return [text]
    return [text[i : i + size] for i in range(0, len(text) - stride, stride)]


class NgramClassifier:
    """Scores texts with the shipped TF-IDF + logistic-regression model."""

    engine = "ngram"

    def __init__(self, artefact: dict[str, Any], model: str, min_chars: int = 0) -> None:
        import numpy as np
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.model = model
        self.min_chars = min_chars
        self.threshold = float(artefact["threshold"])
        self.meta: dict[str, Any] = artefact.get("meta", {})
        self._vectorizers = []
        self._weights = []
        for part in artefact["parts"]:
            vec = TfidfVectorizer(
                analyzer=part["analyzer"],
                ngram_range=tuple(part["ngram_range"]),
                vocabulary={term: i for i, term in enumerate(part["vocabulary"])},
                sublinear_tf=True,
                lowercase=False,
                token_pattern=part.get("token_pattern", r"(?u)\b\w\w+\b"),
                dtype=np.float32,
            )
            vec.idf_ = np.asarray(part["idf"], dtype=np.float32)
            self._vectorizers.append(vec)
            self._weights.append(np.asarray(part["coef"], dtype=np.float32))
        self._bias = float(artefact["intercept"])

    @classmethod
    def load(cls, path: str | Path, min_chars: int = 0) -> NgramClassifier:
        """Load an artefact file (FileNotFoundError when it is missing)."""
        with gzip.open(Path(path), "rt", encoding="utf-8") as f:
            artefact = json.load(f)
        if artefact.get("format") != "guardrails-ngram-v1":
            raise ValueError(f"{path} is not a guardrails n-gram artefact")
        return cls(artefact, str(path), min_chars)

    @classmethod
    def load_default(cls) -> NgramClassifier:
        """The artefact shipped with the service."""
        return cls.load(DEFAULT_PATH)

    def _raw(self, texts: list[str]) -> list[float]:
        total = [self._bias] * len(texts)
        for vec, w in zip(self._vectorizers, self._weights, strict=True):
            part = vec.transform(texts) @ w
            total = [t + float(p) for t, p in zip(total, part, strict=True)]
        return [1.0 / (1.0 + math.exp(-z)) for z in total]

    def scores(self, texts: list[str]) -> list[float]:
        """One score per text: the highest over its windows, on the folded text.

        Texts shorter than `min_chars` score 0: the TUNE data has almost no short benign text
        that mentions instructions, systems or prompts, so on short questions the model
        mistakes the topic for an attack; short texts are left to the rules.
        """
        spans: list[tuple[int, int]] = []
        flat: list[str] = []
        for text in texts:
            parts = windows(marker_view(text)) if len(text.strip()) >= self.min_chars else []
            spans.append((len(flat), len(flat) + len(parts)))
            flat.extend(parts)
        raw = self._raw(flat) if flat else []
        return [max(raw[a:b]) if b > a else 0.0 for a, b in spans]
