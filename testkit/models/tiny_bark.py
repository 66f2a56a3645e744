"""Build a tiny random Bark checkpoint (model + processor) that loads like suno/bark-small."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# A few real words so the BERT tokenizer maps test text to known ids.
_WORDS = [
    "hello",
    "world",
    "the",
    "this",
    "is",
    "a",
    "test",
    "bark",
    "speaks",
    "ready",
    "short",
    "text",
]


def build_tiny_bark(directory: Path, seed: int = 0, presets: dict[str, bool] | None = None) -> Path:
    """Save a random BarkModel (real vocabulary sizes, 16-wide layers) and a BarkProcessor."""
    import torch
    from transformers import (
        BarkCoarseConfig,
        BarkConfig,
        BarkFineConfig,
        BarkModel,
        BarkProcessor,
        BarkSemanticConfig,
        BertTokenizer,
        EncodecConfig,
    )
    from transformers.models.bark.generation_configuration_bark import (
        BarkCoarseGenerationConfig,
        BarkFineGenerationConfig,
        BarkGenerationConfig,
        BarkSemanticGenerationConfig,
    )

    directory.mkdir(parents=True, exist_ok=True)
    # Vocabulary sizes are Bark's real ones: generation offsets tokens by these amounts.
    layers: dict[str, Any] = {
        "hidden_size": 16,
        "num_layers": 1,
        "num_heads": 2,
        "block_size": 1024,
    }
    semantic = BarkSemanticConfig(input_vocab_size=129_600, output_vocab_size=10_048, **layers)
    coarse = BarkCoarseConfig(input_vocab_size=12_096, output_vocab_size=12_096, **layers)
    fine = BarkFineConfig(
        input_vocab_size=1056, output_vocab_size=1056, n_codes_total=8, n_codes_given=1, **layers
    )
    codec = EncodecConfig(
        num_filters=4,
        hidden_size=16,
        codebook_size=1024,
        codebook_dim=16,
        target_bandwidths=[6.0],
        num_lstm_layers=1,
    )
    config = BarkConfig(
        semantic_config=semantic.to_dict(),
        coarse_acoustics_config=coarse.to_dict(),
        fine_acoustics_config=fine.to_dict(),
        codec_config=codec.to_dict(),
    )
    torch.manual_seed(seed)
    BarkModel(config).save_pretrained(directory)
    # transformers 5 cannot save a BarkGenerationConfig itself; the hub checkpoints carry this JSON.
    generation = BarkGenerationConfig(
        semantic_config=BarkSemanticGenerationConfig().to_dict(),  # type: ignore[no-untyped-call]
        coarse_acoustics_config=BarkCoarseGenerationConfig().to_dict(),
        fine_acoustics_config=BarkFineGenerationConfig().to_dict(),  # type: ignore[no-untyped-call]
        sample_rate=24_000,
        codebook_size=1024,
    )
    # transformers leaves these untyped.
    (directory / "generation_config.json").write_text(json.dumps(generation.to_dict()))  # type: ignore[no-untyped-call]
    vocab = directory / "vocab.txt"
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab.write_text("\n".join([*specials, *letters, ".", ",", "!", "?", *_WORDS]) + "\n")
    processor = BarkProcessor(tokenizer=BertTokenizer(str(vocab)))  # type: ignore[no-untyped-call]
    processor.save_pretrained(directory)
    if presets:
        _write_presets(directory, presets, seed)
    return directory


def _write_presets(directory: Path, presets: dict[str, bool], seed: int) -> None:
    # Speaker presets laid out as on the hub: speaker_embeddings_path.json + one .npy per prompt.
    # A preset mapped to False is listed but lacks its fine prompt, so using it fails.
    import numpy as np

    rng = np.random.default_rng(seed)
    sub = directory / "speaker_embeddings"
    index: dict[str, Any] = {"repo_or_path": str(directory)}
    for name, complete in presets.items():
        prompts = {
            "semantic_prompt": rng.integers(0, 10_000, size=20),
            "coarse_prompt": rng.integers(0, 1024, size=(2, 30)),
            "fine_prompt": rng.integers(0, 1024, size=(8, 30)),
        }
        entry = {}
        for key, array in prompts.items():
            rel = f"speaker_embeddings/{name}_{key}.npy"
            entry[key] = rel
            if complete or key != "fine_prompt":
                (sub / name).parent.mkdir(parents=True, exist_ok=True)
                np.save(directory / rel, array)
        index[name] = entry
    (directory / "speaker_embeddings_path.json").write_text(json.dumps(index))
