"""Request bodies of the TTS endpoints (OpenAI `/v1/audio/speech` and the seed's `/synthesize`)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

# Formats every TTS service here can produce; aac is the one OpenAI format libsndfile cannot write.
ResponseFormat = Literal["wav", "pcm", "flac", "mp3", "opus"]
# Formats sent sentence by sentence; the others are compressed whole after synthesis.
STREAMED_FORMATS = frozenset({"wav", "pcm"})


def _voice_name(value: Any) -> Any:
    # The OpenAI API also accepts a custom voice object {"id": "..."}.
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return value["id"]
    return value


# Control characters (NUL included) break the phonemizer; they are never speech, so they become
# spaces. Newlines and tabs are kept: they separate sentences.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _require_text(value: str) -> str:
    value = _CONTROL.sub(" ", value)
    if not value.strip():
        raise ValueError("text must contain at least one non-whitespace character")
    return value


class SpeechRequest(BaseModel):
    """OpenAI `POST /v1/audio/speech` body."""

    model: str = Field("tts-1", description="Accepted for compatibility; the engine decides.")
    input: str = Field(..., description="Text to speak.")
    voice: str = Field("alloy", description="An OpenAI voice name or a local voice name.")
    response_format: ResponseFormat = Field("mp3", description="Audio format of the reply.")
    speed: float = Field(1.0, ge=0.25, le=4.0, description="Speaking rate, 0.25–4.0.")
    instructions: str | None = Field(None, description="Accepted; these engines cannot follow it.")
    stream_format: Literal["audio"] | None = Field(
        None, description="Only raw audio streaming is offered (no SSE)."
    )

    _voice = field_validator("voice", mode="before")(_voice_name)
    _input = field_validator("input")(_require_text)


class SynthesizeRequest(BaseModel):
    """The seed's `POST /synthesize` body; the reply is always WAV."""

    text: str = Field(..., description="Text to speak.")
    voice: str = Field("alloy", description="An OpenAI voice name or a local voice name.")

    _voice = field_validator("voice", mode="before")(_voice_name)
    _text = field_validator("text")(_require_text)
