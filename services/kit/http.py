"""Outbound HTTP: one pooled client that forwards the request ID."""

from __future__ import annotations

import httpx

from services.kit.context import REQUEST_ID_HEADER, current_request_id


async def _add_request_id(request: httpx.Request) -> None:
    rid = current_request_id()
    if rid and REQUEST_ID_HEADER not in request.headers:
        request.headers[REQUEST_ID_HEADER] = rid


def make_client(
    timeout_s: float = 30.0, max_connections: int = 100, bearer: str | None = None
) -> httpx.AsyncClient:
    """A keep-alive AsyncClient that passes X-Request-ID downstream (and `bearer`, if given)."""
    return httpx.AsyncClient(
        headers={"Authorization": f"Bearer {bearer}"} if bearer else None,
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
        limits=httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            # Below uvicorn's 5 s server-side keep-alive: a connection reused just as the
            # server closes it fails with "server disconnected".
            keepalive_expiry=4.0,
        ),
        event_hooks={"request": [_add_request_id]},
    )
