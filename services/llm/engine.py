"""The chat engine interface the routes talk to; backends implement it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from services.kit.engine import Engine, EngineUnavailableError

Role = Literal["system", "user", "assistant"]
# What generate() calls with each new piece of text, and asks whether to stop early.
TextSink = Callable[[str], None]
StopFlag = Callable[[], bool]
# The self-check's prompt budget: "Say hello." fits any chat template in far fewer tokens.
SELF_CHECK_INPUT_TOKENS = 256


@dataclass(frozen=True)
class ChatMessage:
    """One conversation turn after validation (developer is folded into system)."""

    role: Role
    content: str


@dataclass(frozen=True)
class PreparedPrompt:
    """A tokenised prompt that fits the input budget."""

    input_ids: list[int]
    dropped_messages: int = 0

    @property
    def n_tokens(self) -> int:
        """Prompt length in tokens."""
        return len(self.input_ids)


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings for one request."""

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    # OpenAI's additive penalties on tokens already generated (count-scaled / once).
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    # The engines' own controls: CTRL-style multiplicative penalty (None = derive it from the
    # OpenAI penalties where the engine has nothing closer) and a banned repeated n-gram size.
    repetition_penalty: float | None = None
    no_repeat_ngram_size: int = 0


@dataclass
class GenerationOutcome:
    """What a finished generation produced, besides its text."""

    completion_tokens: int
    hit_eos: bool
    cancelled: bool
    first_token_s: float | None = None
    seconds: float = 0.0


class ContextLengthExceeded(ValueError):
    """Even the system message plus the newest user turn do not fit the input budget."""

    def __init__(self, needed: int, limit: int) -> None:
        super().__init__(f"prompt needs {needed} tokens, limit is {limit}")
        self.needed = needed
        self.limit = limit


class ModelUnavailableError(EngineUnavailableError):
    """The configured model could not be loaded or generated nothing in its self-check."""


class ChatEngine(Engine, Protocol):
    """A loaded model that turns chat messages into streamed text (the kit's `Engine` plus chat).

    `name` is the backend (transformers, ctranslate2), `model_id` the id clients see and `kind`
    seq2seq or causal; `self_check` is `check_generates`.
    """

    model_id: str
    kind: str

    def prepare(self, messages: Sequence[ChatMessage], max_input_tokens: int) -> PreparedPrompt:
        """Build and tokenise the prompt, dropping the oldest turns to fit the budget."""
        ...

    def generate(
        self, prompt: PreparedPrompt, params: GenerationParams, on_text: TextSink, stop: StopFlag
    ) -> GenerationOutcome:
        """Generate (blocking), calling `on_text` with each new piece; stop early when asked."""
        ...


def check_generates(engine: ChatEngine) -> None:
    """The self-check every backend runs: two tokens generated for a fixed prompt."""
    prompt = engine.prepare([ChatMessage("user", "Say hello.")], SELF_CHECK_INPUT_TOKENS)
    outcome = engine.generate(
        prompt, GenerationParams(max_new_tokens=2), lambda _: None, lambda: False
    )
    if outcome.completion_tokens < 1:
        raise ModelUnavailableError("self-check generated no tokens")
