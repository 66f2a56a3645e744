"""Bearer keys shared by the mesh: the mesh token, admin keys, key ids and the admin check.

Every stage service (preprocessor, stt, llm, tts, guardrails) refuses requests without the
mesh token when `MESH_TOKEN` is set, so a stage exposed by mistake is not an open door around
the orchestrator's keys and guardrails. Admin keys (`ADMIN_API_KEYS`) guard what exposes
stored data or changes configuration.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Literal

from fastapi import Request
from pydantic import SecretStr

from services.kit.errors import ApiError

# Paths a probe or Prometheus reaches without a key: they carry no user data (health
# states, counts and latencies by route) and the scrape config would otherwise need the
# token. Everything else on a stage service needs it.
OPEN_PATHS = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})

Principal = Literal["open", "mesh", "admin"]


def split_keys(raw: SecretStr | str | None) -> tuple[str, ...]:
    """Comma-separated keys, blanks dropped."""
    if raw is None:
        return ()
    text = raw.get_secret_value() if isinstance(raw, SecretStr) else raw
    return tuple(k.strip() for k in text.split(",") if k.strip())


def key_matches(token: str, keys: Iterable[str]) -> bool:
    """Whether `token` is one of `keys`, compared in constant time against every key."""
    found = False
    raw = token.encode()
    for key in keys:
        found |= hmac.compare_digest(raw, key.encode())
    return found


def key_id(key: str) -> str:
    """A short non-reversible id of a key: names its sessions and its rate-limit bucket."""
    return hashlib.sha256(b"audio-orchestrator-key:" + key.encode()).hexdigest()[:24]


def bearer_of(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


class MeshAuth:
    """Decides who an inbound request to a stage service is: open mesh, mesh caller or admin."""

    def __init__(self, mesh_token: str | None, admin_keys: tuple[str, ...]) -> None:
        self.mesh_token = mesh_token or None
        self.admin_keys = admin_keys

    @property
    def open(self) -> bool:
        """No mesh token configured: every caller is let in (development on 127.0.0.1)."""
        return self.mesh_token is None

    def principal(self, headers: Iterable[tuple[bytes, bytes]]) -> Principal | None:
        """`open` when no token is configured, `mesh`/`admin` for a valid key, else None."""
        if self.mesh_token is None:
            return "open"
        token = bearer_of(_header(headers, b"authorization"))
        if token is None:
            return None
        if key_matches(token, (self.mesh_token,)):
            return "mesh"
        if self.admin_keys and key_matches(token, self.admin_keys):
            return "admin"  # an operator may call a stage directly with an admin key
        return None


def check_admin(request: Request, admin_keys: tuple[str, ...], dev_open: bool = False) -> None:
    """Raise 401/403 in the error envelope unless the request carries an admin key.

    With no admin keys configured the route is refused (403 `admin_disabled`), unless
    `dev_open` (a development-only switch) lets everyone in.
    """
    if not admin_keys:
        if dev_open:
            return
        raise ApiError(
            403,
            "admin routes are disabled: set ADMIN_API_KEYS and send 'Authorization: Bearer "
            "<admin key>'",
            code="admin_disabled",
        )
    token = bearer_of(request.headers.get("authorization"))
    if token is None:
        raise ApiError(
            401,
            "missing admin key: send 'Authorization: Bearer <admin key>'",
            code="missing_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not key_matches(token, admin_keys):
        raise ApiError(
            401, "invalid admin key", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
        )
