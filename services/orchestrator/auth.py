"""Bearer API keys for clients (when configured) and for admin routes (always)."""

from __future__ import annotations

import hmac

from fastapi import Request

from services.kit import ApiError
from services.kit.app import get_state
from services.orchestrator.settings import Settings


def _keys(settings: Settings) -> list[str]:
    return [k.strip() for k in settings.api_keys.split(",") if k.strip()]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _matches(token: str, keys: list[str]) -> bool:
    # Compare against every key in constant time so timing does not reveal a prefix.
    found = False
    for key in keys:
        found |= hmac.compare_digest(token.encode(), key.encode())
    return found


def settings_of(request: Request) -> Settings:
    """The orchestrator's settings from the app state."""
    settings = get_state(request).settings
    assert isinstance(settings, Settings)
    return settings


def _check(token: str | None, keys: list[str]) -> None:
    if token is None:
        raise ApiError(
            401,
            "missing API key: send 'Authorization: Bearer <key>'",
            code="missing_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not _matches(token, keys):
        raise ApiError(
            401, "invalid API key", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
        )


async def require_client(request: Request) -> None:
    """Client routes: open unless ORCHESTRATOR_API_KEYS is set."""
    keys = _keys(settings_of(request))
    if keys:
        _check(_bearer(request), keys)


async def require_admin(request: Request) -> None:
    """Admin routes: always need a key, unless ORCH_ADMIN_OPEN=true and no keys are set."""
    settings = settings_of(request)
    keys = _keys(settings)
    if keys:
        _check(_bearer(request), keys)
    elif not settings.admin_open:
        raise ApiError(
            403,
            "admin routes are disabled: set ORCHESTRATOR_API_KEYS (and send a "
            "Bearer key) or ORCH_ADMIN_OPEN=true for development",
            code="admin_disabled",
        )
