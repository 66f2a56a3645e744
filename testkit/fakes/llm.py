"""A fake engine implementing the real ChatEngine interface (self-check included)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from services.llm.engine import (
    ChatMessage,
    GenerationOutcome,
    GenerationParams,
    PreparedPrompt,
    StopFlag,
    TextSink,
    check_generates,
)


class WordEngine:
    """Says `words` one per token (a prompt token per message); knobs for load tests."""

    name = "fake"
    kind = "causal"

    def __init__(self, words: Sequence[str] = ("Hello", " there."), model_id: str = "fake-1"):
        self.words = list(words)
        self.model_id = model_id
        self.details: dict[str, object] = {"kind": self.kind}

    def prepare(self, messages: Sequence[ChatMessage], max_input_tokens: int) -> PreparedPrompt:
        return PreparedPrompt(input_ids=list(range(len(messages))))

    def self_check(self) -> None:
        check_generates(self)

    def generate(
        self, prompt: PreparedPrompt, params: GenerationParams, on_text: TextSink, stop: StopFlag
    ) -> GenerationOutcome:
        started = time.perf_counter()
        said = self.words[: params.max_new_tokens]
        for word in said:
            on_text(word)
        return GenerationOutcome(
            completion_tokens=len(said),
            hit_eos=len(said) < params.max_new_tokens,
            cancelled=False,
            seconds=time.perf_counter() - started,
        )
