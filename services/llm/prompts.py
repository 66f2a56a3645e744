"""Prompt building: FLAN-T5 text prompts and the turn-dropping rule shared by all models."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from services.llm.engine import ChatMessage, ContextLengthExceeded


def flan_prompt(messages: Sequence[ChatMessage]) -> str:
    """A plain instruction prompt for FLAN-T5: system text, earlier turns, then the question."""
    system = "\n".join(m.content for m in messages if m.role == "system" and m.content.strip())
    turns = [m for m in messages if m.role != "system"]
    last_user = max((i for i, m in enumerate(turns) if m.role == "user"), default=None)
    parts: list[str] = []
    if system:
        parts.append(system)
    if last_user is None:
        # No user turn at all (only assistant text): continue the conversation as given.
        history, question, tail = turns, "", []
    else:
        history, question, tail = (
            turns[:last_user],
            turns[last_user].content,
            turns[last_user + 1 :],
        )
    if history:
        lines = [f"{'User' if m.role == 'user' else 'Assistant'}: {m.content}" for m in history]
        parts.append("Conversation so far:\n" + "\n".join(lines))
    if not system and not history and not tail:
        # FLAN-T5 was instruction-tuned on bare tasks: a lone question works best as it is.
        return question
    if question:
        parts.append(f"Question: {question}")
    # An assistant message after the newest user turn is a prefix the answer continues.
    prefix = " ".join(m.content for m in tail)
    parts.append(f"Answer: {prefix}".rstrip())
    return "\n\n".join(parts)


def fit_messages(
    messages: Sequence[ChatMessage],
    count_tokens: Callable[[Sequence[ChatMessage]], int],
    limit: int,
) -> tuple[list[ChatMessage], int]:
    """Drop the oldest turns until the prompt fits; system messages and the newest user turn stay.

    Returns the kept messages and how many were dropped; raises ContextLengthExceeded when
    the messages that must stay do not fit on their own.
    """
    kept = list(messages)
    needed = count_tokens(kept)
    if needed <= limit:
        return kept, 0
    last_user = max((i for i, m in enumerate(kept) if m.role == "user"), default=len(kept) - 1)
    # Candidates for dropping: non-system turns before the newest user turn, oldest first.
    droppable = [i for i in range(last_user) if kept[i].role != "system"]

    def without_oldest(n: int) -> list[ChatMessage]:
        gone = set(droppable[:n])
        return [m for j, m in enumerate(kept) if j not in gone]

    if not droppable:
        raise ContextLengthExceeded(needed, limit)
    # Dropping a turn never lengthens the prompt, so the fewest drops that fit can be found by
    # bisection: ~log2(n) tokenisations instead of one per dropped turn (a 256-turn request
    # took 240 renders and ~25 s of CPU with the linear scan).
    needed = count_tokens(without_oldest(len(droppable)))
    if needed > limit:
        raise ContextLengthExceeded(needed, limit)
    low, high = 1, len(droppable)  # fits with `high` dropped; does not with `low - 1`
    while low < high:
        mid = (low + high) // 2
        if count_tokens(without_oldest(mid)) <= limit:
            high = mid
        else:
            low = mid + 1
    return without_oldest(high), high
