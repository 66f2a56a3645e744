"""Client keys (ORCHESTRATOR_API_KEYS), admin keys (ADMIN_API_KEYS) and who a caller is."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from services.kit import ApiError
from services.kit.auth import bearer_of, check_admin, key_id, key_matches, split_keys
from services.orchestrator.deps import SettingsDep
from services.orchestrator.settings import Settings

# The scope of every session when no client keys are configured (development).
OPEN_SCOPE = "open"


@dataclass(frozen=True)
class Caller:
    """A verified client: the scope its sessions live in and the identity rate limits see."""

    scope: str  # key id, or "open" when keyless: one key never reads another's sessions
    identity: str  # forwarded to guardrails; never the key itself


@functools.lru_cache(maxsize=8)
def _split(raw: str) -> tuple[str, ...]:
    # Parsed once per key list, not per request: the hot path only compares.
    return split_keys(raw)


def _client_keys(settings: Settings) -> tuple[str, ...]:
    return _split(settings.api_keys)


def _refuse(missing: bool) -> ApiError:
    if missing:
        return ApiError(
            401,
            "missing API key: send 'Authorization: Bearer <key>'",
            code="missing_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return ApiError(
        401, "invalid API key", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
    )


async def require_client(request: Request, settings: SettingsDep) -> Caller:
    """Client routes: a valid key when ORCHESTRATOR_API_KEYS is set; open (one scope) if not."""
    return identify(request, bearer_of(request.headers.get("authorization")), settings)


# The router runs `require_client` for every client route; a route that takes `CallerDep`
# gets that same Caller (FastAPI runs a dependency once per request).
CallerDep = Annotated[Caller, Depends(require_client)]


def identify(conn: HTTPConnection, token: str | None, settings: Settings) -> Caller:
    """The caller presenting `token` (HTTP or WebSocket); a 401 ApiError when it fails."""
    keys = _client_keys(settings)
    if not keys:
        # Keyless development: one session scope; limits fall back to the client address.
        host = conn.client.host if conn.client else "unknown"
        return Caller(OPEN_SCOPE, f"addr-{host}")
    if token is None or not key_matches(token, keys):
        raise _refuse(token is None)
    kid = key_id(token)
    return Caller(kid, f"key-{kid}")


async def require_admin(request: Request, settings: SettingsDep) -> None:
    """Admin routes: an ADMIN_API_KEYS key; with none set, 403 unless ORCH_ADMIN_OPEN (dev)."""
    # The escape only works on a wholly keyless (development) orchestrator: once client keys
    # are set, the deployment is real and admin needs its own key.
    dev_open = settings.admin_open and not _client_keys(settings)
    check_admin(request, _split(settings.admin_api_keys), dev_open=dev_open)
