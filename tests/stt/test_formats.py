"""Subtitle and verbose_json rendering."""

from __future__ import annotations

from services.stt.engine import Segment, Transcription, Word
from services.stt.formats import to_srt, to_verbose_json, to_vtt


def _seg(i: int, start: float, end: float, text: str, words: list[Word] | None = None) -> Segment:
    return Segment(i, 0, start, end, text, [1], 0.0, -0.2, 1.1, 0.02, words or [])


def test_srt_and_vtt_timestamps_and_numbering():
    segs = [_seg(0, 0.0, 2.5, " Hello there."), _seg(1, 3661.0405, 3662.9999, " Bye.")]
    assert to_srt(segs) == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n2\n01:01:01,040 --> 01:01:03,000\nBye.\n"
    )
    assert to_vtt(segs) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n\n"
        "01:01:01.040 --> 01:01:03.000\nBye.\n"
    )
    assert to_srt([]) == "" and to_vtt([]) == "WEBVTT\n\n"


def test_verbose_json_granularities():
    words = [Word(" Hi", 0.0, 0.4, 0.9), Word(" you", 0.4, 0.8, 0.8)]
    t = Transcription("Hi you", "en", 1.0, [_seg(0, 0.0, 0.8, " Hi you", words)])
    default = to_verbose_json(t, set())
    assert default["segments"][0]["text"] == " Hi you" and "words" not in default
    only_words = to_verbose_json(t, {"word"})
    assert "segments" not in only_words
    assert only_words["words"] == [
        {"word": "Hi", "start": 0.0, "end": 0.4},
        {"word": "you", "start": 0.4, "end": 0.8},
    ]
    both = to_verbose_json(t, {"word", "segment"})
    assert len(both["segments"]) == 1 and len(both["words"]) == 2
    assert both["task"] == "transcribe" and both["duration"] == 1.0
