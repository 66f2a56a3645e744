"""Per-request context (the request ID) shared by logs and outbound calls."""

from __future__ import annotations

import contextvars
import uuid

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
REQUEST_ID_HEADER = "X-Request-ID"


def new_request_id() -> str:
    """A fresh opaque request ID."""
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """The request ID of the request being served, if any."""
    return request_id_var.get()


def outbound_headers() -> dict[str, str]:
    """Headers to pass downstream so one ID follows a request through the mesh."""
    rid = request_id_var.get()
    return {REQUEST_ID_HEADER: rid} if rid else {}


# Who a guarded turn is for: the orchestrator sends an opaque id derived from the client's API
# key (or its address when keyless) so guardrails can rate-limit per end user. Stage services
# trust it only from a caller that presented the mesh token (or when no token is configured).
END_USER_HEADER = "X-End-User-ID"
