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
import re
from pathlib import Path
from typing import Any

from services.guardrails.engine import ClassifierBase
from services.guardrails.normalize import marker_view

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "artefacts" / "injection_ngram.json.gz"
WINDOW_CHARS = 600
STRIDE_CHARS = 300


def windows(text: str, size: int = WINDOW_CHARS, stride: int = STRIDE_CHARS) -> list[str]:
    """The text itself when short, else overlapping windows of `size` characters."""
    if len(text) <= size:
        return [text]
    return [text[i : i + size] for i in range(0, len(text) - stride, stride)]


_WHITE = re.compile(r"\s\s+")
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def _word_grams(word: str, lo: int, hi: int) -> list[str]:
    w = f" {word} "
    out: list[str] = []
    for n in range(lo, hi + 1):
        offset = 0
        out.append(w[0:n])
        while offset + n < len(w):
            offset += 1
            out.append(w[offset : offset + n])
        if offset == 0:  # a word shorter than n counts once
            break
    return out


def char_wb_ngrams(
    text: str, lo: int, hi: int, cache: dict[str, list[str]] | None = None
) -> list[str]:
    """Character n-grams inside word boundaries, exactly as scikit-learn's `char_wb`.

    `cache` (word -> its n-grams) is shared by the overlapping windows of one text.
    """
    out: list[str] = []
    for word in _WHITE.sub(" ", text).split():
        if cache is None:
            out += _word_grams(word, lo, hi)
            continue
        grams = cache.get(word)
        if grams is None:
            grams = cache[word] = _word_grams(word, lo, hi)
        out += grams
    return out


def word_ngrams(text: str, lo: int, hi: int) -> list[str]:
    """Word n-grams over scikit-learn's default token pattern, exactly as its `word`."""
    tokens = _TOKEN.findall(text)
    out: list[str] = []
    for n in range(lo, hi + 1):
        out += [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return out


class _Part:
    """One TF-IDF block: its vocabulary, idf and weights (sublinear tf, L2 norm)."""

    def __init__(self, part: dict[str, Any]) -> None:
        self.analyzer = part["analyzer"]
        self.lo, self.hi = part["ngram_range"]
        # term -> (idf, weight): one lookup per n-gram.
        self.terms = {
            t: (float(i), float(w))
            for t, i, w in zip(part["vocabulary"], part["idf"], part["coef"], strict=True)
        }

    def score(self, text: str, cache: dict[str, list[str]]) -> float:
        if self.analyzer == "char_wb":
            grams = char_wb_ngrams(text, self.lo, self.hi, cache)
        else:
            grams = word_ngrams(text, self.lo, self.hi)
        counts: dict[str, int] = {}
        for g in grams:
            if g in self.terms:
                counts[g] = counts.get(g, 0) + 1
        norm = dot = 0.0
        for g, c in counts.items():
            idf, weight = self.terms[g]
            v = (1.0 + math.log(c)) * idf
            norm += v * v
            dot += v * weight
        return dot / math.sqrt(norm) if norm else 0.0


class NgramClassifier(ClassifierBase):
    """Scores texts with the shipped TF-IDF + logistic-regression model (pure Python scoring:
    scikit-learn's per-call input validation cost ~25 ms a text on the 2-core box)."""

    name = "ngram"

    def __init__(self, artefact: dict[str, Any], model: str, min_chars: int = 0) -> None:
        self.model = model
        self.min_chars = min_chars
        self.threshold = float(artefact["threshold"])
        self._parts = [_Part(p) for p in artefact["parts"]]
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
        out = []
        cache: dict[str, list[str]] = {}  # known only to this call: no growth across requests
        for text in texts:
            z = self._bias + sum(part.score(text, cache) for part in self._parts)
            out.append(1.0 / (1.0 + math.exp(-z)))
        return out

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
