"""What every backend shares: model location, engine choice, prompt rendering, streamed text,
and `ChatEngineBase`, the generation frame both backends fill in.

Import-light on purpose (no torch, transformers or ctranslate2 here): the app picks an engine
with it before any heavy library is loaded. The tokenizer arguments are Hugging Face tokenizers,
typed `Any` so this module needs no transformers import.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.llm.engine import (
    ChatMessage,
    GenerationOutcome,
    GenerationParams,
    PreparedPrompt,
    StopFlag,
    TextSink,
    check_generates,
)
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


@dataclass(frozen=True)
class Decoding:
    """One generation as a backend's token loop sees it."""

    input_ids: list[int]
    params: GenerationParams
    text: IncrementalDetokenizer  # takes each new token id as it comes
    stop: StopFlag  # true once the caller wants no more tokens
    seed: int | None  # set for a seeded sampling run, which holds the seed lock


class ChatEngineBase(ABC):
    """A tokenizer-backed `ChatEngine`: prompts, the generation frame and the self-check.

    A backend loads its model and implements `_decode`, the token loop; everything around it
    (timing, streamed text, the seed lock, the outcome) is the same for every backend.
    """

    name: str

    def __init__(
        self, tokenizer: Any, model_id: str, *, is_seq2seq: bool, eos_ids: set[int]
    ) -> None:
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.is_seq2seq = is_seq2seq
        self.kind = "seq2seq" if is_seq2seq else "causal"
        self.prompts = PromptRenderer(tokenizer, is_seq2seq)
        self.eos_ids = eos_ids
        # The sampling RNG a seed sets is shared (torch: process-global; CTranslate2: per
        # worker thread): a seeded run holds this lock so two seeded requests cannot interleave.
        self._seed_lock = threading.Lock()

    @property
    def details(self) -> dict[str, object]:
        """Readiness facts: seq2seq or causal."""
        return {"kind": self.kind}

    def self_check(self) -> None:
        """Generate two tokens for a fixed prompt; raise ModelUnavailableError without them."""
        check_generates(self)

    def prepare(self, messages: Sequence[ChatMessage], max_input_tokens: int) -> PreparedPrompt:
        """Build and tokenise the prompt, dropping the oldest turns to fit the budget."""
        return self.prompts.prepare(messages, max_input_tokens)

    def generate(
        self, prompt: PreparedPrompt, params: GenerationParams, on_text: TextSink, stop: StopFlag
    ) -> GenerationOutcome:
        """Generate (blocking), calling `on_text` with each new piece; stop early when asked."""
        started = time.perf_counter()
        text = IncrementalDetokenizer(self.tokenizer, on_text)
        seed = params.seed if params.temperature > 0 else None
        with self._seed_lock if seed is not None else contextlib.nullcontext():
            made, hit_eos = self._decode(Decoding(prompt.input_ids, params, text, stop, seed))
        text.finish()
        return GenerationOutcome(
            completion_tokens=made,
            hit_eos=hit_eos,
            cancelled=stop() and not hit_eos and made < params.max_new_tokens,
            first_token_s=text.first_token_s,
            seconds=time.perf_counter() - started,
        )

    @abstractmethod
    def _decode(self, run: Decoding) -> tuple[int, bool]:
        """Run the model, feeding each new token id to `text`: (tokens made, ended at EOS)."""
