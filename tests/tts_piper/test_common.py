"""Shared TTS pieces: sentence splitting, OpenAI voice mapping, request validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.kit import ApiError
from services.tts_common.schemas import SpeechRequest, SynthesizeRequest
from services.tts_common.text import split_sentences
from services.tts_common.voices import OPENAI_VOICES, openai_voice_map, resolve_voice


def test_split_sentences_keeps_sentences_and_bounds_length():
    text = 'Hello there. How are you?  "Fine!" she said… Then   we left.'
    assert split_sentences(text) == [
        "Hello there.",
        "How are you?",
        '"Fine!"',
        "she said…",
        "Then we left.",
    ]
    long = "one, two, three; " * 30 + "end."
    pieces = split_sentences(long, max_chars=40)
    assert all(len(p) <= 40 for p in pieces)
    assert " ".join(pieces).split() == long.split()
    word = "x" * 95
    assert split_sentences(word, max_chars=40) == [word[:40], word[40:80], word[80:]]
    assert split_sentences("   ") == []


def test_openai_voices_map_round_robin_with_overrides():
    m = openai_voice_map(["a", "b"], {"nova": "b", "echo": "missing"})
    assert m["alloy"] == "a" and m["echo"] == "b" and m["fable"] == "a"
    assert m["nova"] == "b"  # override; an override naming a missing voice is ignored
    assert set(m) == set(OPENAI_VOICES)
    assert resolve_voice("b", ["a", "b"], m) == "b"
    assert resolve_voice("Alloy", ["a", "b"], m) == "a"
    with pytest.raises(ApiError) as err:
        resolve_voice("robot", ["a", "b"], m)
    assert err.value.status == 400 and err.value.param == "voice"


def test_request_models_validate():
    assert SpeechRequest(input="hi", voice={"id": "nova"}).voice == "nova"  # type: ignore[arg-type]
    assert SpeechRequest(input="hi").response_format == "mp3"
    for bad in (
        {"input": " \n"},
        {"input": "hi", "speed": 0.1},
        {"input": "hi", "response_format": "aac"},
        {"input": "hi", "stream_format": "sse"},
    ):
        with pytest.raises(ValidationError):
            SpeechRequest(**bad)
    with pytest.raises(ValidationError):
        SynthesizeRequest(text="")
