"""One OpenAI-style error envelope for every service."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("kit.errors")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "upstream_timeout",
}


class ApiError(Exception):
    """An error that becomes `{"error": {...}}` with its HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON envelope for this error."""
        return error_body(self.message, self.type, self.param, self.code)

    def response(self) -> JSONResponse:
        """A JSONResponse carrying this error's envelope, status and headers."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_body(
    message: str, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """Build the OpenAI-style error envelope."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _loc_to_param(loc: tuple[Any, ...] | list[Any]) -> str | None:
    # Drop the "body"/"query"/"form" source prefix: clients know the field, not FastAPI's layout.
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form", "cookie")]
    return ".".join(parts) or None


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through the envelope, validation errors included."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        param = _loc_to_param(first.get("loc", ()))
        msg = first.get("msg", "invalid request")
        message = f"{param}: {msg}" if param else str(msg)
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem(s))"
        return ApiError(422, message, param=param, code="validation_error").response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        return ApiError(exc.status_code, str(exc.detail), headers=headers).response()

    @app.exception_handler(Exception)
    async def _unhandled(_: Request, exc: Exception) -> JSONResponse:
        # A server fault: say so (500), log the traceback, never dress it up as success.
        log.exception("unhandled error: %s", type(exc).__name__)
        return ApiError(
            500, "internal server error", type="api_error", code="internal_error"
        ).response()
