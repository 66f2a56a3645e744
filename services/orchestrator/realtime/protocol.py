"""OpenAI Realtime (GA) wire format: ids, server events, the session object and its updates.

Event names and payload shapes follow `openai.types.realtime` (SDK 2.x / 3.x GA): clients
built on the SDK parse every event sent here into its typed model.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.kit.audio import from_pcm16

PCM_RATE = 24_000  # the API's only PCM rate, both directions
PCM_FORMAT: dict[str, Any] = {"type": "audio/pcm", "rate": PCM_RATE}


def new_id(prefix: str) -> str:
    """An id in the API's style (`event_…`, `item_…`, `resp_…`, `sess_…`)."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class ClientEventError(Exception):
    """A client event the session cannot honour; becomes an `error` event, never a closed socket."""

    def __init__(
        self, code: str, message: str, param: str | None = None, event_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.event_id = event_id


def error_event(
    code: str,
    message: str,
    *,
    param: str | None = None,
    event_id: str | None = None,
    kind: str = "invalid_request_error",
) -> dict[str, Any]:
    """The API's `error` event."""
    return {
        "type": "error",
        "event_id": new_id("event"),
        "error": {
            "type": kind,
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        },
    }


def event(kind: str, **fields: Any) -> dict[str, Any]:
    """A server event of type `kind` with a fresh event id."""
    return {"type": kind, "event_id": new_id("event"), **fields}


@dataclass
class TurnDetection:
    """`audio.input.turn_detection` of type `server_vad` (None on the session = manual turns)."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    create_response: bool = True
    interrupt_response: bool = True

    def as_dict(self) -> dict[str, Any]:
        """The wire form."""
        return {
            "type": "server_vad",
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
            "create_response": self.create_response,
            "interrupt_response": self.interrupt_response,
            "idle_timeout_ms": None,
        }


@dataclass
class SessionConfig:
    """What a client may set with `session.update`; the rest is the pipeline's."""

    id: str
    model: str
    instructions: str
    voice: str = "alloy"
    output_modalities: list[str] = field(default_factory=lambda: ["audio"])
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    max_output_tokens: int | None = None
    # Whether the client changed the instructions (then they go to the input guard).
    custom_instructions: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The session object of `session.created` / `session.updated`."""
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": self.id,
            "model": self.model,
            "output_modalities": list(self.output_modalities),
            "instructions": self.instructions,
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": self.max_output_tokens or "inf",
            "audio": {
                "input": {
                    "format": dict(PCM_FORMAT),
                    "transcription": {"model": "pipeline-stt"},
                    "noise_reduction": None,
                    "turn_detection": (
                        self.turn_detection.as_dict() if self.turn_detection else None
                    ),
                },
                "output": {"format": dict(PCM_FORMAT), "voice": self.voice, "speed": 1.0},
            },
        }


def _bad(param: str, message: str, code: str = "invalid_value") -> ClientEventError:
    return ClientEventError(code, message, param=param)


def _check_format(fmt: Any, param: str) -> None:
    if fmt is None:
        return
    if not isinstance(fmt, dict):
        raise _bad(param, f"{param} must be an object")
    kind = fmt.get("type", "audio/pcm")
    if kind != "audio/pcm":
        raise _bad(
            param,
            f"audio format '{kind}' is not supported; use audio/pcm (PCM16 mono, 24 kHz)",
            "unsupported_audio_format",
        )
    rate = fmt.get("rate", PCM_RATE)
    if rate != PCM_RATE:
        raise _bad(
            param, f"audio/pcm rate must be {PCM_RATE} (got {rate})", "unsupported_audio_format"
        )


def _number(raw: dict[str, Any], key: str, lo: float, hi: float, param: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise _bad(f"{param}.{key}", f"{param}.{key} must be a number in [{lo:g}, {hi:g}]")
    return float(value)


def _flag(raw: dict[str, Any], key: str, param: str) -> bool | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _bad(f"{param}.{key}", f"{param}.{key} must be a boolean")
    return value


def _turn_detection(raw: Any, current: TurnDetection | None) -> TurnDetection | None:
    param = "session.audio.input.turn_detection"
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad(param, f"{param} must be an object or null")
    kind = raw.get("type", "server_vad")
    if kind != "server_vad":
        raise _bad(
            f"{param}.type",
            f"turn detection '{kind}' is not supported; use server_vad (Silero VAD) or null",
            "unsupported_turn_detection",
        )
    td = TurnDetection(**vars(current)) if current else TurnDetection()
    if (v := _number(raw, "threshold", 0.0, 1.0, param)) is not None:
        td.threshold = v
    if (v := _number(raw, "prefix_padding_ms", 0, 2000, param)) is not None:
        td.prefix_padding_ms = int(v)
    if (v := _number(raw, "silence_duration_ms", 100, 10_000, param)) is not None:
        td.silence_duration_ms = int(v)
    if (b := _flag(raw, "create_response", param)) is not None:
        td.create_response = b
    if (b := _flag(raw, "interrupt_response", param)) is not None:
        td.interrupt_response = b
    if raw.get("idle_timeout_ms") is not None:
        raise _bad(f"{param}.idle_timeout_ms", "idle_timeout_ms is not supported", "unsupported")
    return td


def apply_update(config: SessionConfig, raw: Any, max_text_chars: int) -> SessionConfig:
    """The config after a `session.update` payload; ClientEventError leaves it unchanged."""
    if not isinstance(raw, dict):
        raise _bad("session", "session must be an object")
    kind = raw.get("type", "realtime")
    if kind != "realtime":
        raise _bad("session.type", f"session type '{kind}' is not supported; use 'realtime'")
    if raw.get("tools"):
        # Running the client's functions would need it in the loop; dropping them silently
        # would let it believe the model saw them.
        raise _bad(
            "session.tools",
            "client tools are not supported; the pipeline's built-in tools run server-side",
            "tools_not_supported",
        )
    new = SessionConfig(**{**vars(config)})
    if "instructions" in raw:
        text = raw["instructions"]
        if not isinstance(text, str) or len(text) > max_text_chars:
            raise _bad(
                "session.instructions",
                f"instructions must be a string of at most {max_text_chars} characters",
            )
        new.instructions = text
        new.custom_instructions = True
    if "output_modalities" in raw:
        mods = raw["output_modalities"]
        if mods not in (["audio"], ["text"]):
            raise _bad(
                "session.output_modalities", 'output_modalities must be ["audio"] or ["text"]'
            )
        new.output_modalities = list(mods)
    if "max_output_tokens" in raw:
        new.max_output_tokens = _max_tokens(raw["max_output_tokens"], "session.max_output_tokens")
    audio = raw.get("audio")
    if audio is not None:
        if not isinstance(audio, dict):
            raise _bad("session.audio", "session.audio must be an object")
        inp = audio.get("input") or {}
        out = audio.get("output") or {}
        if not isinstance(inp, dict) or not isinstance(out, dict):
            raise _bad("session.audio", "audio.input and audio.output must be objects")
        _check_format(inp.get("format"), "session.audio.input.format")
        _check_format(out.get("format"), "session.audio.output.format")
        if "turn_detection" in inp:
            new.turn_detection = _turn_detection(inp["turn_detection"], config.turn_detection)
        if "voice" in out:
            voice = out["voice"]
            if not isinstance(voice, str) or not 0 < len(voice) <= 64:
                raise _bad("session.audio.output.voice", "voice must be a name of 1-64 characters")
            new.voice = voice
    return new


def _max_tokens(value: Any, param: str) -> int | None:
    if value == "inf" or value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
        raise _bad(param, f'{param} must be an integer in [1, 4096] or "inf"')
    return value


def response_object(
    response_id: str,
    status: str,
    *,
    modalities: list[str],
    voice: str,
    output: list[dict[str, Any]] | None = None,
    reason: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `realtime.response` resource of `response.created` / `response.done`."""
    details: dict[str, Any] | None = None
    if status != "in_progress" and (reason or error):
        details = {"type": status, "reason": reason, "error": error}
    return {
        "object": "realtime.response",
        "id": response_id,
        "status": status,
        "status_details": details,
        "output": output or [],
        "conversation_id": "conv_default",
        "output_modalities": list(modalities),
        "max_output_tokens": "inf",
        "audio": {"output": {"format": dict(PCM_FORMAT), "voice": voice}},
        "usage": None,
        "metadata": None,
    }


def _message(item_id: str, role: str, status: str, kind: str, text: str | None) -> dict[str, Any]:
    # `kind`: input_audio/output_audio carry a transcript, input_text/output_text a text.
    key = "transcript" if kind.endswith("audio") else "text"
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": role,
        "status": status,
        "content": [{"type": kind, key: text}],
    }


def user_item(item_id: str, text: str | None, *, audio: bool) -> dict[str, Any]:
    """A user message item (its transcript, or text for a text turn); audio bytes omitted."""
    return _message(item_id, "user", "completed", "input_audio" if audio else "input_text", text)


def assistant_item(item_id: str, text: str, status: str, *, audio: bool) -> dict[str, Any]:
    """An assistant message item with its transcript (audio) or text."""
    kind = "output_audio" if audio else "output_text"
    return _message(item_id, "assistant", status, kind, text)


def decode_append(raw: Any, limit: int) -> np.ndarray:
    """The samples of an `input_audio_buffer.append` (base64 PCM16, at most `limit` bytes)."""
    if not isinstance(raw, str):
        raise ClientEventError("invalid_value", "audio must be a base64 string", "audio")
    too_large = ClientEventError(
        "audio_too_large", f"one append may carry at most {limit} bytes of audio", "audio"
    )
    if len(raw) > (limit + 2) // 3 * 4:  # checked before decoding anything
        raise too_large
    try:
        pcm = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ClientEventError("invalid_audio", "audio is not valid base64", "audio") from exc
    if len(pcm) > limit:
        raise too_large
    if len(pcm) % 2:
        raise ClientEventError(
            "invalid_audio", "audio/pcm is 16-bit: an even number of bytes", "audio"
        )
    return from_pcm16(pcm)


def parse_user_text_item(item: Any, max_chars: int) -> tuple[str, str]:
    """(item id, text) of a `conversation.item.create` user message of input_text parts."""
    if not isinstance(item, dict) or item.get("type", "message") != "message":
        raise ClientEventError("invalid_value", "item must be a message object", "item")
    if item.get("role") != "user":
        raise ClientEventError(
            "unsupported_item",
            "only user messages can be added (the assistant's turns come from responses)",
            "item.role",
        )
    parts = item.get("content")
    if not isinstance(parts, list) or not parts:
        raise ClientEventError("invalid_value", "item.content must be a list", "item.content")
    texts = []
    for part in parts:
        if not isinstance(part, dict) or part.get("type") != "input_text":
            raise ClientEventError(
                "unsupported_content",
                "only input_text content is supported in conversation.item.create",
                "item.content",
            )
        if not isinstance(part.get("text"), str):
            raise ClientEventError("invalid_value", "input_text needs text", "item.content")
        texts.append(part["text"])
    text = " ".join(texts).strip()
    if not text or len(text) > max_chars:
        raise ClientEventError(
            "invalid_value", f"text must hold 1-{max_chars} characters", "item.content"
        )
    raw_id = item.get("id")
    item_id = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= 64 else new_id("item")
    return item_id, text
