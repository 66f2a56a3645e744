"""The one error type of the client library and the one parser of the OpenAI error envelope."""

from __future__ import annotations

import json
from dataclasses import dataclass

# How much of a non-JSON error body a message keeps (an HTML proxy page can be long).
_TEXT_LIMIT = 300


@dataclass(frozen=True)
class ErrorDetail:
    """What an error body says: the human message and, from an envelope, its code and type."""

    message: str
    code: str | None = None
    type: str | None = None


def parse_error(body: object, fallback: str) -> ErrorDetail:
    """Read `{"error": {message, code, type}}`, a bare `{"error": "..."}` or FastAPI's `detail`.

    `body` is decoded JSON; `fallback` is the message when the body says nothing usable (the
    HTTP reason phrase, typically). The openai SDK's `APIStatusError.body` (the inner error
    object) is read too.
    """
    if not isinstance(body, dict):
        return ErrorDetail(fallback)
    err = body.get("error", body)
    if isinstance(err, dict) and isinstance(err.get("message"), str) and err["message"]:
        code, kind = err.get("code"), err.get("type")
        return ErrorDetail(
            err["message"],
            None if code is None else str(code),
            None if kind is None else str(kind),
        )
    if isinstance(err, str) and err:
        return ErrorDetail(err)
    detail = body.get("detail")
    if detail:
        return ErrorDetail(str(detail)[:_TEXT_LIMIT])
    return ErrorDetail(fallback)


def parse_error_text(text: str, fallback: str) -> ErrorDetail:
    """`parse_error` for a raw response body; a body that is not JSON is the message itself."""
    try:
        body = json.loads(text)
    except ValueError:
        return ErrorDetail(text.strip()[:_TEXT_LIMIT] or fallback)
    return parse_error(body, fallback)


class OrchestratorError(Exception):
    """The orchestrator refused or failed a request, or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        attempts: int = 1,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code  # the envelope's error.code, e.g. "no_speech"
        self.attempts = attempts
        self.retryable = retryable


class OrchestratorUnavailable(OrchestratorError):
    """The orchestrator stayed unreachable or overloaded through every attempt."""
