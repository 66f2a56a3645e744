"""Conversation: system prompt + session history + the new user turn, sent to an LLM.

Two clients speak to the LLM stage's providers: a direct OpenAI-wire POST over the shared
HTTP client (default: ~8 ms less CPU per turn) and LangChain's ChatOpenAI (`ORCH_LLM_CLIENT=
langchain`, for LangChain callbacks and tracing). Both send the same messages.
"""

from __future__ import annotations

from typing import Any

from services.orchestrator.engine import Turn
from services.orchestrator.executor import BadResponse


def build_messages(system_prompt: str, history: list[Turn], user_text: str) -> list[dict[str, str]]:
    """OpenAI chat messages for one turn."""
    messages = [{"role": "system", "content": system_prompt}]
    messages.extend({"role": t["role"], "content": t["content"]} for t in history)
    messages.append({"role": "user", "content": user_text})
    return messages


def to_langchain(messages: list[dict[str, str]]) -> list[Any]:
    """The same messages as LangChain message objects."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    return [kinds[m["role"]](m["content"]) for m in messages]


async def ask_langchain(model: Any, messages: list[dict[str, str]]) -> tuple[str, dict[str, int]]:
    """Invoke a (bound) ChatOpenAI; returns the reply text and token usage."""
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
    if not text:
        raise BadResponse("the model returned an empty reply")
    usage_meta = getattr(result, "usage_metadata", None) or {}
    usage = {
        "prompt_tokens": int(usage_meta.get("input_tokens", 0)),
        "completion_tokens": int(usage_meta.get("output_tokens", 0)),
        "total_tokens": int(usage_meta.get("total_tokens", 0)),
    }
    return text, usage
