"""Build a tiny Llama-shaped chat model (own BPE tokenizer, ChatML template) on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testkit.models.tiny_t5 import _CORPUS

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# SmolLM2's template: system/user/assistant turns between <|im_start|> and <|im_end|>.
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_tokenizer(vocab_size: int = 300) -> Any:
    """Train a BPE tokenizer with ChatML specials, wrapped as a fast HF tokenizer.

    Metaspace pieces over the corpus characters only (no byte fallback), so whatever the random
    model picks decodes to readable text, one piece per token.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    fast.chat_template = CHATML
    return fast


def build_llama(directory: Path, seed: int = 0) -> Path:
    """Save tokenizer + randomly initialised tiny Llama (never emits <|im_end|>) to `directory`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        # Big enough that a token takes ~1 ms in CTranslate2 (2000 tokens ≈ 2 s), so a client
        # can disconnect mid-generation; small enough to build and convert in a second.
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        # Zero logits for the special tokens: a model that never stops gives known lengths.
        model.lm_head.weight[: len(SPECIALS)] = 0.0
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(directory)
    model.save_pretrained(directory)
    return directory
