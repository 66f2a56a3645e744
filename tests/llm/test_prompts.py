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
