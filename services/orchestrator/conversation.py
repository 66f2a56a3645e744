"""LangChain conversation: system prompt + session history + the new user turn."""

from __future__ import annotations

from typing import Any

from services.orchestrator.engine import Turn
from services.orchestrator.executor import BadResponse


def build_messages(system_prompt: str, history: list[Turn], user_text: str) -> list[Any]:
    """LangChain messages for one turn."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    messages: list[Any] = [SystemMessage(system_prompt)]
    for turn in history:
        cls = HumanMessage if turn["role"] == "user" else AIMessage
        messages.append(cls(turn["content"]))
    messages.append(HumanMessage(user_text))
    return messages


async def ask(model: Any, messages: list[Any]) -> tuple[str, dict[str, int]]:
    """Invoke a (bound) ChatOpenAI; returns the reply text and token usage."""
    try:
        result = await model.ainvoke(messages)
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
