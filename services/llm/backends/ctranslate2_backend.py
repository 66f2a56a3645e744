"""CTranslate2 backend: converted causal (Generator) and seq2seq (Translator) models."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from services.llm.backends.common import (
    CT2_WEIGHTS,
    ChatEngineBase,
    Decoding,
    ctrl_repetition_penalty,
    resolve_model,
)
from services.llm.engine import GenerationParams

log = logging.getLogger("llm.ctranslate2")

# Any one of these beside model.bin means the Hugging Face tokenizer was saved there.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "spiece.model", "tokenizer.model")
# What convert_model copies from a transformers directory: the tokenizer in all its forms, the
# chat template, and generation_config.json (its eos_token_id list is read at load).
COPIED_FILES = (
    *TOKENIZER_FILES,
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
)
# ctranslate2.set_random_seed treats this value as "pick a random seed".
_RANDOM_SEED_SENTINEL = 2**32 - 1

CONVERT_HINT = (
    "convert one with `ct2-transformers-converter --model <hub id or dir> --quantization int8"
    " --output_dir <dir> --copy_files tokenizer.json tokenizer_config.json ...`"
    " (see docs/services/llm.md)"
)


def _device(device: str) -> tuple[str, int]:
    """Split a torch-style device ("cpu", "cuda", "cuda:1") into CTranslate2's device and index."""
    name, _, index = device.partition(":")
    return name, int(index) if index else 0


def _eos_ids(path: Path, config: dict[str, Any], tokenizer: Any) -> set[int]:
    """End-of-sequence ids: the converted model's eos_token plus generation_config.json's."""
    names = config.get("eos_token") or []
    names = [names] if isinstance(names, str) else names
    ids = {tokenizer.convert_tokens_to_ids(name) for name in names}
    gen_file = path / "generation_config.json"
    if gen_file.is_file():
        eos = json.loads(gen_file.read_text()).get("eos_token_id")
        ids.update(eos if isinstance(eos, list) else [] if eos is None else [eos])
    if not ids and tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return {int(i) for i in ids if i is not None}


def convert_model(source: Path, out: Path, quantization: str = "int8") -> Path:
    """Convert a transformers model directory into a CTranslate2 one, tokenizer files beside it.

    Writes `<out>.partial` and renames it into place, so an interrupted run leaves no half model
    under `out`; an existing `out` is replaced.
    """
    import ctranslate2

    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    files = [name for name in COPIED_FILES if (source / name).is_file()]
    converter = ctranslate2.converters.TransformersConverter(str(source), copy_files=files)
    converter.convert(str(partial), quantization=quantization, force=True)
    if out.exists():
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        partial.rename(out)
        shutil.rmtree(old)
    else:
        partial.rename(out)
    return out


def convert_gguf(gguf_file: Path, out: Path, quantization: str = "int8") -> Path:
    """Convert a causal-model GGUF file into a CTranslate2 directory (via a temporary fp32 copy)."""
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_file.name}
    auto: Any = AutoModelForCausalLM
    gguf_model = auto.from_pretrained(str(gguf_file.parent), dtype=torch.float32, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), **kwargs)
    # transformers refuses save_pretrained on a GGUF-loaded model ("not serializable"): copy its
    # dequantised weights into a plain model built from the same config, minus the GGUF marker.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = auto.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict())
    plain.generation_config = gguf_model.generation_config
    del gguf_model
    with tempfile.TemporaryDirectory(prefix="gguf-to-ct2-") as tmp:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        del plain
        return convert_model(Path(tmp), out, quantization)


class CTranslate2ChatEngine(ChatEngineBase):
    """A CTranslate2 model with its Hugging Face tokenizer, streaming through generate_tokens."""

    name = "ctranslate2"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        model_id: str,
        *,
        is_seq2seq: bool,
        eos_ids: set[int],
        open_copy: Callable[[], Any],
    ) -> None:
        super().__init__(tokenizer, model_id, is_seq2seq=is_seq2seq, eos_ids=eos_ids)
        self.model = model
        self._open_copy = open_copy

    @classmethod
    def load(
        cls,
        spec: str,
        *,
        served_name: str = "",
        device: str = "cpu",
        compute_type: str = "int8",
        threads: int = 1,
        parallel: int = 1,
    ) -> CTranslate2ChatEngine:
        """Load a converted model directory and the tokenizer saved beside it (blocking)."""
        import ctranslate2
        from transformers import AutoTokenizer

        source = resolve_model(spec, served_name)
        path = Path(source.path)
        if source.gguf_file or not (path / CT2_WEIGHTS).is_file():
            raise FileNotFoundError(
                f"not a CTranslate2 model directory (no {CT2_WEIGHTS}): {spec}; {CONVERT_HINT}"
            )
        if not any((path / name).is_file() for name in TOKENIZER_FILES):
            raise FileNotFoundError(
                f"no tokenizer files beside {CT2_WEIGHTS} in {path}: save the model's tokenizer"
                " there (tokenizer.save_pretrained, or the converter's --copy_files)"
            )
        config_file = path / "config.json"
        config: dict[str, Any] = {}
        if config_file.is_file():
            config = json.loads(config_file.read_text())
        # Only encoder-decoder specs carry a decoder start token (T5's <pad>) in their config.
        is_seq2seq = "decoder_start_token" in config
        kind: Any = ctranslate2.Translator if is_seq2seq else ctranslate2.Generator
        ct2_device, index = _device(device)

        def open_model(parallel: int = parallel) -> Any:
            return kind(
                str(path),
                device=ct2_device,
                device_index=index,
                compute_type=compute_type,
                intra_threads=threads,
                inter_threads=parallel,
            )

        model = open_model()
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        log.info(
            "model loaded",
            extra={"model": source.model_id, "kind": kind.__name__, "compute_type": compute_type},
        )
        return cls(
            model,
            tokenizer,
            source.model_id,
            is_seq2seq=is_seq2seq,
            eos_ids=_eos_ids(path, config, tokenizer),
            open_copy=lambda: open_model(1),
        )

    def _decode(self, run: Decoding) -> tuple[int, bool]:
        model = self.model if run.seed is None else self._seeded_copy(run.seed)
        steps = self._steps(model, run.input_ids, run.params)
        made = 0
        try:
            for step in steps:
                made += 1
                run.text.add((step.token_id,))
                if step.token_id in self.eos_ids:
                    return made, True
                if run.stop():
                    break
        finally:
            # Closing the iterator tells CTranslate2 to stop decoding and waits until it has.
            steps.close()
            del model
        return made, False

    def _seeded_copy(self, seed: int) -> Any:
        """A private copy of the model whose sampling RNG starts from `seed`.

        CTranslate2 keeps one RNG per worker thread, seeded from the global seed the first time
        that thread samples; set_random_seed does not reseed threads that already have. Only a
        fresh model (fresh worker thread) picks the seed up, so a seeded request pays a reload
        (~0.1 s for SmolLM2-135M int8, weights read from the page cache) and, while it runs,
        a second copy of the weights in memory.
        """
        import ctranslate2

        ctranslate2.set_random_seed(seed % _RANDOM_SEED_SENTINEL)
        return self._open_copy()

    def _steps(
        self, model: Any, input_ids: list[int], params: GenerationParams
    ) -> Generator[Any, None, None]:
        tokens: list[str] = self.tokenizer.convert_ids_to_tokens(input_ids)
        options: dict[str, Any] = {
            "end_token": sorted(self.eos_ids) or None,
            # CTranslate2 has no additive OpenAI penalties: its CTRL penalty stands in for them.
            "repetition_penalty": ctrl_repetition_penalty(params),
            "no_repeat_ngram_size": params.no_repeat_ngram_size,
        }
        if params.temperature > 0:
            # sampling_topk=0: sample from the whole distribution (as transformers' top_k=0).
            options.update(
                sampling_topk=0,
                sampling_topp=params.top_p,
                sampling_temperature=params.temperature,
            )
        else:
            options.update(sampling_topk=1)
        if self.is_seq2seq:
            # The prompt already fits LLM_MAX_INPUT_TOKENS; CTranslate2 must not cut it again
            # (max_input_length=0). min_decoding_length=0 lets </s> come first, as in transformers.
            steps: Generator[Any, None, None] = model.generate_tokens(
                tokens,
                max_decoding_length=params.max_new_tokens,
                min_decoding_length=0,
                max_input_length=0,
                **options,
            )
        else:
            steps = model.generate_tokens(tokens, max_length=params.max_new_tokens, **options)
        return steps
