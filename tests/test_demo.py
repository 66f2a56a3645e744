"""The demo's reply check: characters decide, so a merged word does not fail a right answer."""

from __future__ import annotations

from scripts.demo import cer, wer


def test_reply_check_by_characters() -> None:
    said, heard = "The capital of France is Paris.", "the capital of Francis Paris."
    assert wer(said, heard) > 0.25  # one merged word costs a third of the words
    assert cer(said, heard) <= 0.15
    assert cer(said, "The capital of France is Paris") == 0.0  # case and punctuation ignored
    assert cer(said, "I do not know that city.") > 0.15
    assert cer(said, "") > 0.15
