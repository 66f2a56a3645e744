"""Sequence-classification models through transformers (e.g. unitary/toxic-bert)."""

from __future__ import annotations

from typing import Any

from services.guardrails.engine import ClassifierBase

# Labels that mean "fine": their probability is not counted towards the guarded class.
NEGATIVE_LABELS = frozenset(
    {
        "safe",
        "benign",
        "neutral",
        "non-toxic",
        "non_toxic",
        "nontoxic",
        "not_toxic",
        "clean",
        "legit",
        "legitimate",
        "ok",
        "normal",
        "none",
    }
)


class TransformersClassifier(ClassifierBase):
    """AutoModelForSequenceClassification + tokenizer loaded from a hub id or directory."""

    name = "transformers"

    def __init__(
        self, model_id: str, *, device: str = "cpu", max_tokens: int = 512, multi_label: bool
    ) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.model = model_id
        self._torch = torch
        self._tokenizer: Any = AutoTokenizer.from_pretrained(model_id)
        self._model: Any = AutoModelForSequenceClassification.from_pretrained(model_id)
        self._model.to(device).eval()
        self._device = device
        self._max_tokens = max_tokens
        problem = getattr(self._model.config, "problem_type", None)
        # The config's own problem type wins; otherwise the caller says how to read the logits
        # (toxic-bert style models are multi-label: one sigmoid per label).
        if problem == "multi_label_classification":
            self._multi_label = True
        elif problem == "single_label_classification":
            self._multi_label = False
        else:
            self._multi_label = multi_label or self._model.config.num_labels == 1
        id2label: dict[int, str] = dict(self._model.config.id2label)
        self.labels = [id2label[i] for i in range(self._model.config.num_labels)]
        self._positive = [
            i for i, name in enumerate(self.labels) if name.lower() not in NEGATIVE_LABELS
        ]
        if not self._positive:
            raise ValueError(f"model {model_id} has no label outside {sorted(NEGATIVE_LABELS)}")

    def scores(self, texts: list[str]) -> list[float]:
        """Highest probability among the model's non-benign labels, per text."""
        torch = self._torch
        batch = self._tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self._max_tokens,
            return_tensors="pt",
        ).to(self._device)
        with torch.inference_mode():
            logits = self._model(**batch).logits.float()
        probs = torch.sigmoid(logits) if self._multi_label else torch.softmax(logits, dim=-1)
        positive = probs[:, self._positive]
        return [float(v) for v in positive.max(dim=-1).values.tolist()]
