"""Call the Piper service when Bark cannot answer, and probe it for readiness."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from fastapi import Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from services.kit import ApiError

log = logging.getLogger("tts_bark.fallback")

# Upstream statuses that mean "Piper could not serve", not "the caller asked for something bad".
_TRANSIENT = {408, 429}


def _upstream_message(body: bytes) -> str:
    import json

    try:
        data = json.loads(body)
        return str(data["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace")


async def call_piper(
    client: httpx.AsyncClient,
    base_url: str,
    path: str,
    payload: dict[str, Any],
    reason: str,
) -> Response:
    """Forward a request to Piper and stream its audio back; 4xx pass through, failures 502/503."""
    if not base_url:
        raise ApiError(
            503,
            f"Bark cannot answer ({reason}) and no Piper fallback is configured"
            " (PIPER_FALLBACK_URL)",
            code="fallback_unavailable",
            headers={"Retry-After": "5"},
        )
    url = base_url.rstrip("/") + path
    try:
        resp = await client.send(client.build_request("POST", url, json=payload), stream=True)
    except httpx.TimeoutException as exc:
        raise ApiError(
            502,
            f"Bark cannot answer ({reason}) and the Piper fallback timed out",
            code="fallback_failed",
        ) from exc
    except httpx.HTTPError as exc:
        raise ApiError(
            503,
            f"Bark cannot answer ({reason}) and the Piper fallback is unreachable"
            f" ({type(exc).__name__})",
            code="fallback_unavailable",
            headers={"Retry-After": "5"},
        ) from exc
    if resp.status_code >= 400:
        body = await resp.aread()
        await resp.aclose()
        if resp.status_code < 500 and resp.status_code not in _TRANSIENT:
            # The caller's mistake (unknown voice, text too long for Piper): say it as Piper did.
            return Response(
                body,
                status_code=resp.status_code,
                media_type=resp.headers.get("content-type", "application/json"),
                headers={"X-TTS-Engine": "piper", "X-TTS-Fallback-Reason": reason},
            )
        raise ApiError(
            502,
            f"Bark cannot answer ({reason}) and the Piper fallback failed with"
            f" {resp.status_code}: {_upstream_message(body)}",
            code="fallback_failed",
        )
    headers = {"X-TTS-Engine": "piper", "X-TTS-Fallback-Reason": reason}
    for name in ("x-sample-rate", "x-tts-voice", "content-length"):
        if name in resp.headers:
            headers[name] = resp.headers[name]
    return StreamingResponse(
        resp.aiter_raw(),
        media_type=resp.headers.get("content-type", "application/octet-stream"),
        headers=headers,
        background=BackgroundTask(resp.aclose),
    )


async def probe_piper(client: httpx.AsyncClient, base_url: str) -> tuple[bool, str]:
    """Whether Piper's /health/ready says it can serve, with a short reason."""
    if not base_url:
        return False, "no fallback configured (PIPER_FALLBACK_URL empty)"
    try:
        resp = await client.get(base_url.rstrip("/") + "/health/ready", timeout=3.0)
    except httpx.HTTPError as exc:
        return False, f"fallback unreachable ({type(exc).__name__})"
    if resp.status_code == 200:
        return True, "fallback ready"
    return False, f"fallback not ready ({resp.status_code})"
