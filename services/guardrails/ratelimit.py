"""slowapi limiter per app, and its 429 in the service's error envelope."""

from __future__ import annotations

import math
import re
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address

from services.guardrails.settings import Settings
from services.kit.context import END_USER_HEADER
from services.kit.errors import ApiError

_END_USER = re.compile(r"^[A-Za-z0-9_.:\-]{1,96}$")


def rate_key(request: Request) -> str:
    """The end user a request counts for: the forwarded identity, else the client address.

    The orchestrator is one address for every user; it forwards who it verified. That header
    is believed only from a caller that presented the mesh token (or when none is configured,
    the development mesh); anyone else is counted by address, so a forged header buys nothing.
    """
    principal = request.scope.get("state", {}).get("principal")
    if principal in ("mesh", "open"):
        user = request.headers.get(END_USER_HEADER)
        if user and _END_USER.match(user):
            return "user:" + user
    return "addr:" + get_remote_address(request)


def build_limiter(settings: Settings) -> Limiter:
    """A limiter on the configured storage, keyed by end user (see `rate_key`)."""
    from limits import parse

    parse(settings.rate_limit)  # a malformed limit must stop startup, not every request
    return Limiter(
        key_func=rate_key,
        storage_uri=settings.limiter_storage_uri,
        key_prefix="guardrails",
        headers_enabled=False,
        # A storage outage must surface (503 below), not silently drop to per-process counts.
        in_memory_fallback_enabled=False,
        swallow_errors=False,
    )


def _retry_after(limiter: Limiter, request: Request) -> int:
    view = getattr(request.state, "view_rate_limit", None)
    if view is None:
        return 1
    try:
        reset_at, _ = limiter.limiter.get_window_stats(view[0], *view[1])
    except Exception:  # storage unreachable while answering a 429: a hint is enough
        return 1
    return max(1, math.ceil(reset_at - time.time()))


def install_rate_limiting(app: FastAPI, limiter: Limiter) -> None:
    """Attach the limiter and answer limit hits and storage outages in the error envelope."""
    app.state.limiter = limiter

    async def _limited(request: Request, exc: Exception) -> JSONResponse:
        detail = getattr(exc, "detail", "rate limit exceeded")
        return ApiError(
            429,
            f"rate limit exceeded: {detail}",
            code="rate_limited",
            headers={"Retry-After": str(_retry_after(limiter, request))},
        ).response()

    async def _storage_down(request: Request, exc: Exception) -> JSONResponse:
        return ApiError(
            503,
            f"rate-limit storage unavailable: {type(exc).__name__}",
            code="rate_limit_storage_unavailable",
            headers={"Retry-After": "5"},
        ).response()

    app.add_exception_handler(RateLimitExceeded, _limited)
    for exc_type in _storage_errors():
        app.add_exception_handler(exc_type, _storage_down)


def _storage_errors() -> list[type[Exception]]:
    from limits.errors import StorageError

    errors: list[type[Exception]] = [StorageError]
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # redis is only needed when REDIS_URL is set
        return errors
    return [*errors, RedisConnectionError, RedisTimeoutError]
