"""The llm stage's client interface: `LlmClient`, and the tool rounds that run on any of them.

Two implementations, chosen once by `backends.open_llm_client` (`ORCH_LLM_CLIENT`):
`llm_http.HttpLlmClient` (default) posts the OpenAI chat format over the stage calls' shared
aiohttp session (less CPU per turn); `llm_langchain.LangChainLlmClient` goes through
LangChain's ChatOpenAI over an httpx client (LangChain callbacks and tracing). Both send the
same messages, give the same `ChatReply`, stream alike and raise errors `executor.classify`
knows, so the executor's timeouts, breakers and fallbacks treat them the same.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol, Self

from services.orchestrator.config import EffectiveStage, ProviderConfig
from services.orchestrator.conversation import Answer, converse
from services.orchestrator.executor import BadResponse, Deferred, StreamVerdict
from services.orchestrator.stages import ChatReply


@dataclass(frozen=True)
class LlmCall:
    """One llm-stage call to one provider: what either client needs to send it."""

    config: ProviderConfig
    options: dict[str, Any]  # the provider's options, overridden by the stage's
    tools: tuple[str, ...]  # offered: the stage's tools, when the provider supports tools
    timeout_s: float

    @classmethod
    def for_stage(
        cls,
        stage: EffectiveStage,
        config: ProviderConfig,
        timeout_s: float,
        max_tokens: int | None = None,
    ) -> LlmCall:
        """The call for this stage and provider; `max_tokens` caps the configured one."""
        options = {**config.options, **stage.options}
        if max_tokens is not None:
            options["max_tokens"] = min(int(options.get("max_tokens") or max_tokens), max_tokens)
        # Tools go only to providers that declare they support them.
        offered = stage.tools if config.supports_tools else ()
        return cls(config, options, offered, timeout_s)


class ReplyStream(Protocol):
    """A streamed reply whose first piece has arrived; iterate for the rest, close to stop."""

    def __aiter__(self) -> AsyncIterator[str]:
        """The reply's text pieces, the first one included."""
        ...

    async def aclose(self) -> None:
        """Drop the stream: the provider sees the connection go and stops generating."""
        ...


class LlmClient(Protocol):
    """How the llm stage talks to one provider."""

    name: str

    async def chat(
        self, call: LlmCall, messages: list[dict[str, Any]], tool_choice: str | None = None
    ) -> ChatReply:
        """One chat completion, offering `call.tools` (tool_choice "auto"/"none") if any."""
        ...

    async def chat_stream(self, call: LlmCall, messages: list[dict[str, Any]]) -> ReplyStream:
        """A streamed completion, open and past its first piece (no tools)."""
        ...

    async def aclose(self) -> None:
        """Release what the client owns."""
        ...


async def answer(
    client: LlmClient,
    call: LlmCall,
    messages: list[dict[str, Any]],
    max_rounds: int,
    on_tool: Callable[[str, bool], None] | None = None,
) -> Answer:
    """The model's final reply, running the tools it calls (at most `max_rounds` rounds)."""

    async def ask(msgs: list[dict[str, Any]], allow: bool) -> ChatReply:
        choice = ("auto" if allow else "none") if call.tools else None
        return await client.chat(call, msgs, choice)

    return await converse(ask, messages, call.tools, max_rounds, on_tool)


async def stream_or_answer(
    client: LlmClient,
    call: LlmCall,
    messages: list[dict[str, Any]],
    max_rounds: int,
    on_tool: Callable[[str, bool], None] | None = None,
) -> ReplyStream | Answer:
    """A stream when no tool is offered; tool rounds need whole replies, so then an Answer."""
    if call.tools:
        return await answer(client, call, messages, max_rounds, on_tool)
    return await client.chat_stream(call, messages)


class PrimedStream(Deferred):
    """A reply stream started on its first piece, so a provider that fails before it fails
    inside the stage executor (fallbacks and breakers apply); `_next_piece` reads on.

    Its verdict is settled when it ends (`executor.StreamVerdict`): read to its end → success;
    broken mid-reply → failure as classified; closed or cancelled before its end → none.
    """

    _first: str | None = None
    _verdict: StreamVerdict | None = None  # None: opened outside the executor

    @abstractmethod
    async def _next_piece(self) -> str | None:
        """The next non-empty piece, or None at the end of the stream."""

    @abstractmethod
    async def _close(self) -> None:
        """Drop the connection: the provider sees it go and stops generating."""

    def defer(self, verdict: StreamVerdict) -> None:
        """Settle `verdict` when this stream ends."""
        self._verdict = verdict

    async def aclose(self) -> None:
        """Drop the stream: the provider sees the connection go and stops generating.

        Before the stream's end this is the client stopping it: no verdict on the provider.
        """
        if self._verdict is not None:
            self._verdict.cancelled()
        await self._close()

    async def start(self) -> Self:
        """Wait for the first piece (an empty reply is a BadResponse)."""
        self._first = await self._next_piece()
        if self._first is None:
            raise BadResponse("the model returned an empty reply")
        return self

    def __aiter__(self) -> AsyncIterator[str]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[str]:
        verdict = self._verdict
        try:
            if self._first is not None:
                first, self._first = self._first, None
                yield first
            while (piece := await self._next_piece()) is not None:
                yield piece
        except Exception as exc:
            if verdict is not None:
                verdict.broke(exc)  # a failure for the provider's breaker, then raised on
            raise
        except BaseException:
            # Cancelled (barge-in, disconnect) or the reader dropped the iterator: no verdict.
            if verdict is not None:
                verdict.cancelled()
            raise
        if verdict is not None:
            verdict.completed()
