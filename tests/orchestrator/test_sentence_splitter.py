"""The live reply's unit of speech: sentences, and an early cut for a long first one."""

from __future__ import annotations

from services.orchestrator.realtime.turn import SentenceSplitter


def _feed(text: str, step: int = 3) -> list[str]:
    splitter = SentenceSplitter()
    out: list[str] = []
    for i in range(0, len(text), step):
        out.extend(splitter.add(text[i : i + step]))
    if rest := splitter.finish():
        out.append(rest)
    return out


def test_sentences_are_cut_at_their_end_marks() -> None:
    """. ! ? … followed by a space (a closing quote may follow the mark)."""
    text = 'The sky is blue. Is it? Yes! He said "go." Then… we left'
    assert _feed(text) == [
        "The sky is blue.",
        "Is it?",
        "Yes!",
        'He said "go."',
        "Then…",
        "we left",
    ]


def test_a_long_first_sentence_is_cut_at_its_last_comma() -> None:
    """The first audio should not wait for a long sentence: cut past 60 characters."""
    first = "Two plus two is a classic problem, and the answer to it, as most people know"
    out = _feed(first + ", is four. The end.")
    assert out[0].endswith(",") and len(out[0]) > 20
    assert " ".join(out) == first + ", is four. The end."


def test_later_sentences_are_never_cut_early() -> None:
    """Only the first piece is hurried; the rest wait for their end marks."""
    second = "This second sentence is long, has commas, and keeps going well past sixty letters."
    assert _feed("Short first. " + second) == ["Short first.", second]


def test_a_short_first_sentence_is_not_cut_at_a_comma() -> None:
    """Under the threshold a comma is not a cut."""
    assert _feed("Yes, Paris is the capital.") == ["Yes, Paris is the capital."]


def test_a_long_first_sentence_without_commas_is_cut_at_a_word() -> None:
    """Past 90 characters with no comma: cut at the last space, no word split."""
    first = (
        "Two plus two is a classic math problem that has been taught to children in schools "
        "for many generations and still is"
    )
    out = _feed(first + " today. Next.")
    assert 20 < len(out[0]) <= 93 and first.startswith(out[0])
    assert " ".join(out) == first + " today. Next."
