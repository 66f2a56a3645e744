"""Conversation: system prompt + session history + the new user turn, sent to an LLM.

`converse` runs the tool rounds over any `ask`; the LLM clients that answer it (plain HTTP or
LangChain, one interface) are in `backends/llm.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from services.orchestrator.executor import BadResponse
from services.orchestrator.history import Turn
from services.orchestrator.stages import ChatReply
from services.orchestrator.tools import run_tool


def build_messages(system_prompt: str, history: list[Turn], user_text: str) -> list[dict[str, Any]]:
    """OpenAI chat messages for one turn."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}]
    messages.extend({"role": t["role"], "content": t["content"]} for t in history)
    messages.append({"role": "user", "content": user_text})
    return messages


# One request to the model: (messages so far, whether tools may be called now) -> its reply.
Ask = Callable[[list[dict[str, Any]], bool], Awaitable[ChatReply]]


@dataclass
class Answer:
    """The model's final reply for a turn, with the tools it called on the way."""

    text: str
    usage: dict[str, int]
    tools_called: list[str] = field(default_factory=list)


async def converse(
    ask: Ask,
    messages: list[dict[str, Any]],
    offered: tuple[str, ...],
    max_rounds: int,
    on_tool: Callable[[str, bool], None] | None = None,
) -> Answer:
    """Ask until the model answers in text, running the tools it calls (≤ max_rounds rounds)."""
    messages = list(messages)  # tool turns stay in this request, not in the session history
    answer = Answer("", {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
    rounds = 0
    while True:
        allow = bool(offered) and rounds < max_rounds
        reply = await ask(messages, allow)
        for key, value in reply.usage.items():
            answer.usage[key] = answer.usage.get(key, 0) + value
        if not reply.tool_calls:
            answer.text = reply.text
            return answer
        if not allow:
            if reply.text:
                answer.text = reply.text
                return answer
            raise BadResponse(
                "the model asked for tools it was not offered"
                if not offered
                else f"the model still asked for tools after {max_rounds} round(s)"
            )
        rounds += 1
        messages.append(
            {
                "role": "assistant",
                "content": reply.text or None,
                "tool_calls": list(reply.tool_calls),
            }
        )
        for call in reply.tool_calls:
            fn = call["function"]
            result = run_tool(fn["name"], fn["arguments"], offered)
            answer.tools_called.append(fn["name"])
            if on_tool is not None:
                on_tool(fn["name"], not result.startswith("error:"))
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
