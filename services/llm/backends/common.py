"""What every backend shares: model location, engine choice, prompt rendering, streamed text.

Import-light on purpose (no torch, transformers or ctranslate2 here): the app picks an engine
with it before any heavy library is loaded. The tokenizer arguments are Hugging Face tokenizers,
typed `Any` so this module needs no transformers import.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.llm.engine import ChatMessage, GenerationParams, PreparedPrompt
from services.llm.prompts import fit_messages, flan_prompt

log = logging.getLogger("llm.backends")

FLAN_ALIASES = {size: f"google/flan-t5-{size}" for size in ("small", "base", "large", "xl", "xxl")}
# A CTranslate2 model directory always holds this file (the converter's weights + spec).
CT2_WEIGHTS = "model.bin"


@dataclass(frozen=True)
class ModelSource:
    """Where to load a model from: a hub id or directory, plus a GGUF file name inside it."""

    path: str
    gguf_file: str | None
    model_id: str


def resolve_model(spec: str, served_name: str = "") -> ModelSource:
    """Turn LLM_MODEL (alias, hub id, directory or .gguf file) into a load source."""
    spec = spec.strip()
    if not spec:
        raise ValueError("LLM_MODEL is empty")
    path = FLAN_ALIASES.get(spec.lower(), spec)
    gguf_file: str | None = None
    model_id = path
    if path.lower().endswith(".gguf"):
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"GGUF file not found: {path}")
        path, gguf_file = str(file.parent), file.name
        model_id = file.name[: -len(".gguf")]
    elif Path(path).is_dir():
        model_id = Path(path).resolve().name
    return ModelSource(path=path, gguf_file=gguf_file, model_id=served_name or model_id)


def is_ct2_model_dir(spec: str) -> bool:
    """True when `spec` is a directory holding a converted CTranslate2 model."""
    path = Path(FLAN_ALIASES.get(spec.strip().lower(), spec.strip()))
    return path.is_dir() and (path / CT2_WEIGHTS).is_file()


def pick_engine(engine: str, spec: str) -> str:
    """Resolve LLM_ENGINE: auto = ctranslate2 for a CTranslate2 directory, else transformers."""
    if engine != "auto":
        return engine
    return "ctranslate2" if is_ct2_model_dir(spec) else "transformers"


# OpenAI penalty sum → CTRL-style multiplicative penalty where an engine has only the latter:
# frequency_penalty 0.5 → 1.1, the value that ended SmolLM2's loops (docs/quality.md).
CTRL_PER_OPENAI_PENALTY = 0.2
CTRL_PENALTY_RANGE = (0.5, 2.0)


def ctrl_repetition_penalty(params: GenerationParams) -> float:
    """The multiplicative repetition penalty for `params` (1.0 = off).

    An explicit `repetition_penalty` wins; otherwise OpenAI's additive frequency/presence
    penalties are approximated: 1 + 0.2 × (frequency + presence), within 0.5–2.0.
    """
    if params.repetition_penalty is not None:
        return params.repetition_penalty
    raw = 1.0 + CTRL_PER_OPENAI_PENALTY * (params.frequency_penalty + params.presence_penalty)
    low, high = CTRL_PENALTY_RANGE
    return min(max(raw, low), high)


class PromptRenderer:
    """Chat messages → prompt token ids: FLAN text prompt or the tokenizer's chat template."""

    def __init__(self, tokenizer: Any, is_seq2seq: bool) -> None:
        self.tokenizer = tokenizer
        self.is_seq2seq = is_seq2seq
        self.has_chat_template = bool(getattr(tokenizer, "chat_template", None))

    def render(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Token ids of the whole prompt for these messages."""
        if self.is_seq2seq or not self.has_chat_template:
            text = flan_prompt(messages)
            ids: list[int] = self.tokenizer(text, add_special_tokens=self.is_seq2seq)["input_ids"]
            return ids
        text = self._chat_template(messages)
        # The template already holds BOS and role markers; adding special tokens would double them.
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def _chat_template(self, messages: Sequence[ChatMessage]) -> str:
        convo = [{"role": m.role, "content": m.content} for m in messages]
        try:
            text: str = self.tokenizer.apply_chat_template(
                convo,
                add_generation_prompt=messages[-1].role != "assistant",
                continue_final_message=messages[-1].role == "assistant",
                tokenize=False,
            )
            return text
        except Exception as exc:  # some templates refuse a system role: fold it into a user turn
            if not any(m.role == "system" for m in messages):
                raise
            log.debug("chat template rejected system role", extra={"error": type(exc).__name__})
        system = "\n".join(m.content for m in messages if m.role == "system")
        rest = [m for m in messages if m.role != "system"]
        first_user = next((i for i, m in enumerate(rest) if m.role == "user"), None)
        if first_user is None:
            rest.insert(0, ChatMessage("user", system))
        else:
            rest[first_user] = ChatMessage("user", f"{system}\n\n{rest[first_user].content}")
        return self._chat_template(rest)

    def prepare(self, messages: Sequence[ChatMessage], max_input_tokens: int) -> PreparedPrompt:
        """Build and tokenise the prompt, dropping the oldest turns to fit the budget.

        CPU-heavy for long conversations (template + tokeniser per trial): callers run it in a
        worker thread, never on the event loop.
        """
        rendered: dict[tuple[ChatMessage, ...], list[int]] = {}

        def count(ms: Sequence[ChatMessage]) -> int:
            # Remembered so the chosen trial is not rendered a second time below.
            ids = rendered[tuple(ms)] = self.render(ms)
            return len(ids)

        kept, dropped = fit_messages(messages, count, max_input_tokens)
        ids = rendered.get(tuple(kept))
        return PreparedPrompt(
            input_ids=ids if ids is not None else self.render(kept), dropped_messages=dropped
        )


class IncrementalDetokenizer:
    """Turns generated token ids into text pieces as they arrive, not only at word ends.

    Incremental detokenisation (as in text-generation-inference): the newest tokens are decoded
    together with a few before them, so merges and leading spaces come out right at constant cost
    per token; text ending in an incomplete UTF-8 sequence waits for the next token.
    """

    def __init__(self, tokenizer: Any, on_text: Callable[[str], None]) -> None:
        self.tokenizer = tokenizer
        self.on_text = on_text
        self.started = time.perf_counter()
        self.first_token_s: float | None = None
        self.tokens: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0

    def add(self, ids: Iterable[int]) -> None:
        """Take newly generated ids and hand out whatever complete text they add."""
        if self.first_token_s is None:
            self.first_token_s = time.perf_counter() - self.started
        self.tokens.extend(ids)
        self._emit()

    def finish(self) -> None:
        """Hand out the held-back tail, incomplete UTF-8 included."""
        self._emit(final=True)

    def _emit(self, final: bool = False) -> None:
        decode = self.tokenizer.decode
        prefix: str = decode(
            self.tokens[self.prefix_offset : self.read_offset], skip_special_tokens=True
        )
        text: str = decode(self.tokens[self.prefix_offset :], skip_special_tokens=True)
        if len(text) > len(prefix) and (final or not text.endswith("\ufffd")):
            self.on_text(text[len(prefix) :])
            self.prefix_offset = self.read_offset
            self.read_offset = len(self.tokens)
