"""A fake engine implementing the real ChatEngine interface (self-check included)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from services.llm import engine as llm


class WordEngine:
    """Says `words` one per token (a prompt token per message); knobs for load tests."""

    name = "fake"
    kind = "causal"

    def __init__(self, words: Sequence[str] = ("Hello", " there."), model_id: str = "fake-1"):
        self.words = list(words)
        self.model_id = model_id
        self.details: dict[str, object] = {"kind": self.kind}

    def prepare(
        self, messages: Sequence[llm.ChatMessage], max_input_tokens: int
    ) -> llm.PreparedPrompt:
        return llm.PreparedPrompt(input_ids=list(range(len(messages))))

    def self_check(self) -> None:
        llm.check_generates(self)

    def generate(
        self,
        prompt: llm.PreparedPrompt,
        params: llm.GenerationParams,
        on_text: llm.TextSink,
        stop: llm.StopFlag,
    ) -> llm.GenerationOutcome:
        started = time.perf_counter()
        said = self.words[: params.max_new_tokens]
        for word in said:
            on_text(word)
        return llm.GenerationOutcome(
            completion_tokens=len(said),
            hit_eos=len(said) < params.max_new_tokens,
            cancelled=False,
            seconds=time.perf_counter() - started,
        )
