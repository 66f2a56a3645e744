"""Prompt building, turn dropping and stop-sequence scanning (pure functions)."""

from __future__ import annotations

import pytest

from services.llm.engine import ChatMessage, ContextLengthExceeded
from services.llm.prompts import fit_messages, flan_prompt
from services.llm.stops import StopScanner


def _words(ms):
    return sum(len(m.content.split()) for m in ms)


def test_flan_prompt_lone_question_is_bare():
    assert flan_prompt([ChatMessage("user", "What is 2+2?")]) == "What is 2+2?"


def test_flan_prompt_system_history_and_question():
    p = flan_prompt(
        [
            ChatMessage("system", "Be brief."),
            ChatMessage("user", "Hi"),
            ChatMessage("assistant", "Hello!"),
            ChatMessage("user", "Capital of France?"),
        ]
    )
    assert p == (
        "Be brief.\n\nConversation so far:\nUser: Hi\nAssistant: Hello!\n\n"
        "Question: Capital of France?\n\nAnswer:"
    )


def test_fit_keeps_system_and_newest_user_dropping_oldest_first():
    msgs = [
        ChatMessage("system", "sys words here"),
        ChatMessage("user", "one two three four"),
        ChatMessage("assistant", "five six seven eight"),
        ChatMessage("user", "nine ten"),
        ChatMessage("assistant", "eleven twelve"),
        ChatMessage("user", "newest question"),
    ]
    kept, dropped = fit_messages(msgs, _words, limit=10)
    assert dropped == 2
    assert [m.content for m in kept] == [
        "sys words here",
        "nine ten",
        "eleven twelve",
        "newest question",
    ]
    kept, dropped = fit_messages(msgs, _words, limit=100)
    assert dropped == 0 and kept == msgs


def test_fit_raises_when_required_turns_do_not_fit():
    msgs = [ChatMessage("system", "a b c"), ChatMessage("user", "d e f g")]
    with pytest.raises(ContextLengthExceeded) as info:
        fit_messages(msgs, _words, limit=5)
    assert info.value.needed == 7 and info.value.limit == 5


def test_stop_scanner_holds_back_partial_matches():
    s = StopScanner(["END"])
    assert s.feed("hello E") == "hello "
    assert s.feed("N") == ""
    assert s.feed("D more") == ""
    assert s.stopped and s.flush() == ""


def test_stop_scanner_releases_false_alarm_and_picks_earliest():
    s = StopScanner(["xyz", "b"])
    assert s.feed("ax") == "a"
    assert s.feed("y") == ""
    assert s.feed("q") == "xyq"
    assert s.feed("cab") == "ca" and s.stopped
    s = StopScanner(["lo"])
    assert s.feed("hel") == "he"
    assert s.flush() == "l"
    assert StopScanner([]).feed("anything") == "anything"


def _fit_linear(msgs, count, limit):
    """The turn-dropping rule as first written: drop the oldest droppable turn until it fits."""
    kept = list(msgs)
    last_user = max(i for i, m in enumerate(kept) if m.role == "user")
    droppable = [i for i in range(last_user) if kept[i].role != "system"]
    for n in range(len(droppable) + 1):
        trial = [m for j, m in enumerate(kept) if j not in set(droppable[:n])]
        if count(trial) <= limit:
            return trial, n
    return None


def test_fit_bisection_drops_as_few_turns_as_the_linear_rule_with_log_renders():
    import random

    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(2, 256)
        msgs = [
            ChatMessage(rng.choice(["system", "user", "assistant"]), "w " * rng.randint(0, 40))
            for _ in range(n - 1)
        ] + [ChatMessage("user", "w " * rng.randint(1, 5))]
        limit = rng.randint(5, 400)
        calls = 0

        def count(ms):
            nonlocal calls
            calls += 1
            return _words(ms)

        expected = _fit_linear(msgs, _words, limit)
        if expected is None:
            with pytest.raises(ContextLengthExceeded):
                fit_messages(msgs, count, limit)
            continue
        assert fit_messages(msgs, count, limit) == expected
        # One count of the whole prompt, one with every droppable turn gone, then bisection.
        assert calls <= 2 + max(1, n).bit_length()
