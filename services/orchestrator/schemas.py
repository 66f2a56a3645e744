"""Request bodies of the orchestrator's own endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.kit import ApiError


class TranscriptRequest(BaseModel):
    """POST /mcp/transcript."""

    transcript: str = Field(description="What the user said (already transcribed).")
    session_id: str | None = Field(None, description="Conversation id; a new one when absent.")
    pipeline: str | None = Field(None, description="Pipeline name; the active one when absent.")
    audio: bool = Field(False, description="Also run the pipeline's tts stage (base64 WAV).")
    voice: str | None = Field(
        None, max_length=64, description="TTS voice (e.g. alloy); the stage's voice when absent."
    )


class ChatMessage(BaseModel):
    """One OpenAI chat message (text content only)."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text (text parts of multi-part content joined).

        A part that is not text (image, audio, file) is refused with 400: the pipeline could
        neither read nor guard it, and dropping it silently would hide that.
        """
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        for part in self.content:
            if part.get("type") != "text":
                raise ApiError(
                    400,
                    f"content part of type {str(part.get('type'))[:40]!r} is not supported; "
                    "send text parts only",
                    param="messages",
                    code="unsupported_content_part",
                )
        return "".join(str(p.get("text", "")) for p in self.content)

    def texts(self) -> list[str]:
        """Every client-written text the message carries: content and tool-call arguments."""
        out = [self.text()]
        calls = (self.model_extra or {}).get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    out.append(str(fn.get("arguments") or ""))
        return out


class ChatRequest(BaseModel):
    """POST /v1/chat/completions (sampling fields are accepted; the pipeline's options rule)."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    user: str | None = None
