"""Build a tiny FLAN-T5-shaped model (own Unigram tokenizer + random T5) on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_CORPUS = [
    "What is the capital of France? Paris is the capital of France.",
    "Answer the question. The sky is blue and the grass is green.",
    "User: hello there. Assistant: hi, how can I help you today?",
    "Translate to German: good morning. Guten Morgen.",
    "Question: how many legs does a spider have? Answer: eight.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Conversation so far: the weather is nice, we should go outside and play.",
    "Be brief. Say hello. ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz",
    "0123456789 .,!?:;'-",
]


def build_tokenizer(vocab_size: int = 200, pad_to: int | None = None) -> Any:
    """Train a Unigram tokenizer with T5's special tokens and wrap it as T5TokenizerFast.

    `pad_to` appends rarely-used filler pieces up to that many entries, so a benchmark model
    can carry FLAN-T5's real 32,128-entry vocabulary (and LM-head cost) with every id decodable.
    """
    import json

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import T5TokenizerFast  # type: ignore[attr-defined]

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "</s>", "<unk>"],
        unk_token="<unk>",
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    if pad_to is not None and pad_to > tok.get_vocab_size():
        vocab = [(p, float(sc)) for p, sc in json.loads(tok.to_str())["model"]["vocab"]]
        vocab += [(f"▁w{i}", -30.0) for i in range(pad_to - len(vocab))]
        padded = Tokenizer(models.Unigram(vocab, unk_id=2))
        padded.normalizer, padded.pre_tokenizer, padded.decoder = (
            tok.normalizer,
            tok.pre_tokenizer,
            tok.decoder,
        )
        tok = padded
    return T5TokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0
    )


def t5_config(vocab_size: int, size: str = "tiny") -> Any:
    """A T5Config: tiny, or the dimensions of google/flan-t5-small / -base (random init)."""
    from transformers import T5Config

    dims: dict[str, dict[str, Any]] = {
        "tiny": {
            "d_model": 32,
            "d_ff": 64,
            "d_kv": 8,
            "num_layers": 2,
            "num_decoder_layers": 2,
            "num_heads": 4,
        },
        "small": {
            "d_model": 512,
            "d_ff": 1024,
            "d_kv": 64,
            "num_layers": 8,
            "num_decoder_layers": 8,
            "num_heads": 6,
        },
        "base": {
            "d_model": 768,
            "d_ff": 2048,
            "d_kv": 64,
            "num_layers": 12,
            "num_decoder_layers": 12,
            "num_heads": 12,
        },
    }
    kwargs: dict[str, Any] = {
        "vocab_size": vocab_size,
        "feed_forward_proj": "gated-gelu",
        "tie_word_embeddings": False,
        "decoder_start_token_id": 0,
        "pad_token_id": 0,
        "eos_token_id": 1,
        **dims[size],
    }
    return T5Config(**kwargs)


def build_t5(
    directory: Path, size: str = "tiny", seed: int = 0, vocab_size: int | None = None
) -> Path:
    """Save tokenizer + randomly initialised T5 (never emits </s>) to `directory`; return it."""
    import torch
    from transformers import T5ForConditionalGeneration

    # Real FLAN-T5 has a 32k vocabulary; a bench model pads to it so the LM head costs the same.
    tokenizer = build_tokenizer(pad_to=vocab_size)
    vocab = len(tokenizer)
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(t5_config(vocab, size))
    with torch.no_grad():
        # Zero logits for <pad> and </s>: random weights otherwise favour <pad>, and a model
        # that never stops gives tests and benchmarks a known length (max_tokens).
        model.lm_head.weight[:2] = 0.0
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(directory)
    model.save_pretrained(directory)
    return directory
