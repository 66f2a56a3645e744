"""OpenAI chat-completions request shapes and their validation into engine types."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from services.kit import ApiError
from services.llm.engine import ChatMessage, GenerationParams, Role
from services.llm.settings import Settings

_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
}


class MessageIn(BaseModel):
    """One message as OpenAI clients send it."""

    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    """OpenAI `stream_options`."""

    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """POST /v1/chat/completions body; unknown OpenAI fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[MessageIn]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    # Not OpenAI fields (vLLM and text-generation-inference take the same names).
    repetition_penalty: float | None = None
    no_repeat_ngram_size: int | None = None


def _content_text(msg: MessageIn, index: int) -> str:
    param = f"messages.{index}.content"
    if isinstance(msg.content, str):
        return msg.content
    if msg.content is None:
        if msg.role == "assistant":  # assistant turns that only carried tool calls
            return ""
        raise ApiError(400, f"{param} is required", param=param, code="invalid_content")
    texts: list[str] = []
    for j, part in enumerate(msg.content):
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise ApiError(
                400,
                f"{param}.{j}: only text content parts are supported",
                param=f"{param}.{j}",
                code="unsupported_content",
            )
        texts.append(part["text"])
    return "\n".join(texts)


def to_messages(req: ChatCompletionRequest, settings: Settings) -> list[ChatMessage]:
    """Validate roles and contents; fold developer into system and content parts into text."""
    if not req.messages:
        raise ApiError(400, "messages must not be empty", param="messages", code="empty_messages")
    if len(req.messages) > settings.max_messages:
        raise ApiError(
            400,
            f"at most {settings.max_messages} messages are accepted",
            param="messages",
            code="too_many_messages",
        )
    out: list[ChatMessage] = []
    total = 0
    for i, msg in enumerate(req.messages):
        role = _ROLES.get(msg.role)
        if role is None:
            raise ApiError(
                400,
                f"messages.{i}.role: unsupported role {msg.role!r} "
                "(use system, developer, user or assistant)",
                param=f"messages.{i}.role",
                code="invalid_role",
            )
        text = _content_text(msg, i)
        total += len(text)
        out.append(ChatMessage(role, text))
    if total > settings.max_content_chars:
        raise ApiError(
            400,
            f"message content exceeds {settings.max_content_chars} characters",
            param="messages",
            code="content_too_long",
        )
    return out


def to_params(req: ChatCompletionRequest, settings: Settings) -> GenerationParams:
    """Validate decoding settings against the service limits."""
    if req.tools:
        # Saying so beats ignoring them: a client that sends tools waits for tool calls.
        raise ApiError(
            400,
            "tools are not supported by this model server",
            param="tools",
            code="unsupported_tools",
        )
    if req.n is not None and req.n != 1:
        raise ApiError(400, "only n=1 is supported", param="n", code="unsupported_n")
    max_tokens = (
        req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    )
    param = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
    if max_tokens is None:
        max_tokens = min(settings.default_max_tokens, settings.max_new_tokens_limit)
    elif max_tokens <= 0 or max_tokens > settings.max_new_tokens_limit:
        raise ApiError(
            400,
            f"{param} must be between 1 and {settings.max_new_tokens_limit}",
            param=param,
            code="invalid_max_tokens",
        )
    temperature = settings.default_temperature if req.temperature is None else req.temperature
    if not 0.0 <= temperature <= 2.0:
        raise ApiError(
            400,
            "temperature must be between 0 and 2",
            param="temperature",
            code="invalid_temperature",
        )
    top_p = 1.0 if req.top_p is None else req.top_p
    if not 0.0 < top_p <= 1.0:
        raise ApiError(
            400, "top_p must be greater than 0 and at most 1", param="top_p", code="invalid_top_p"
        )
    penalties = {
        "frequency_penalty": req.frequency_penalty,
        "presence_penalty": req.presence_penalty,
    }
    for name, value in penalties.items():
        if value is not None and not -2.0 <= value <= 2.0:
            raise ApiError(
                400, f"{name} must be between -2 and 2", param=name, code=f"invalid_{name}"
            )
    if req.repetition_penalty is not None and not 0.0 < req.repetition_penalty <= 10.0:
        raise ApiError(
            400,
            "repetition_penalty must be greater than 0 and at most 10 (1 = off)",
            param="repetition_penalty",
            code="invalid_repetition_penalty",
        )
    ngram = req.no_repeat_ngram_size
    if ngram is not None and not 0 <= ngram <= settings.max_no_repeat_ngram_size:
        raise ApiError(
            400,
            f"no_repeat_ngram_size must be between 0 and {settings.max_no_repeat_ngram_size}",
            param="no_repeat_ngram_size",
            code="invalid_no_repeat_ngram_size",
        )
    return GenerationParams(
        max_new_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=req.seed,
        frequency_penalty=req.frequency_penalty or 0.0,
        presence_penalty=req.presence_penalty or 0.0,
        repetition_penalty=req.repetition_penalty,
        no_repeat_ngram_size=ngram or 0,
    )


def to_stops(req: ChatCompletionRequest, settings: Settings) -> list[str]:
    """Stop sequences as a list, bounded by the setting."""
    stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    stops = [s for s in stops if s]
    if len(stops) > settings.max_stop_sequences:
        raise ApiError(
            400,
            f"at most {settings.max_stop_sequences} stop sequences are accepted",
            param="stop",
            code="too_many_stops",
        )
    return stops
