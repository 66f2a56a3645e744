"""Conversation: system prompt + session history + the new user turn, sent to an LLM.

Two clients speak to the LLM stage's providers: a direct OpenAI-wire POST over the shared
HTTP client (default: ~4 ms less CPU per voice turn, docs/benchmarks.md) and LangChain's
ChatOpenAI (`ORCH_LLM_CLIENT=langchain`, for LangChain callbacks and tracing). Both send the
same messages.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from services.orchestrator.engine import Turn
from services.orchestrator.executor import BadResponse
from services.orchestrator.stages import ChatReply, wire_tool_call
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


def to_langchain(messages: list[dict[str, Any]]) -> list[Any]:
    """The same messages as LangChain message objects (tool calls and results included)."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    out: list[Any] = []
    for m in messages:
        role = m["role"]
        if role == "system":
            out.append(SystemMessage(m["content"]))
        elif role == "user":
            out.append(HumanMessage(m["content"]))
        elif role == "tool":
            out.append(ToolMessage(m["content"], tool_call_id=m["tool_call_id"]))
        else:
            calls = [
                {
                    "name": c["function"]["name"],
                    "args": _json_args(c["function"]["arguments"]),
                    "id": c["id"],
                }
                for c in m.get("tool_calls", [])
            ]
            out.append(AIMessage(m.get("content") or "", tool_calls=calls))
    return out


def _json_args(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def ask_langchain(
    model: Any, messages: list[dict[str, Any]], tool_choice: str | None = None
) -> ChatReply:
    """Invoke a (bound) ChatOpenAI once; the same ChatReply as the plain HTTP client."""
    if tool_choice is not None:
        model = model.bind(tool_choice=tool_choice)
    try:
        result = await model.ainvoke(to_langchain(messages))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # LangChain fails this way on a 2xx reply that is not a chat completion: the
        # provider's fault, so the executor may move on to the next one.
        raise BadResponse(f"unusable chat completion: {type(exc).__name__}") from exc
    content = result.content
    if isinstance(content, list):  # content blocks: keep the text parts
        content = "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    text = str(content).strip()
    calls = tuple(
        wire_tool_call(c.get("id") or f"call_{i}", c["name"], json.dumps(c.get("args") or {}))
        for i, c in enumerate(getattr(result, "tool_calls", None) or [])
    )
    if not text and not calls:
        raise BadResponse("the model returned an empty reply")
    usage_meta = getattr(result, "usage_metadata", None) or {}
    usage = {
        "prompt_tokens": int(usage_meta.get("input_tokens", 0)),
        "completion_tokens": int(usage_meta.get("output_tokens", 0)),
        "total_tokens": int(usage_meta.get("total_tokens", 0)),
    }
    return ChatReply(text, usage, calls)
