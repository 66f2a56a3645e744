"""Pure ASGI middleware: request IDs, mesh token, body-size limit, request metrics."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.kit.auth import OPEN_PATHS, MeshAuth
from services.kit.context import REQUEST_ID_HEADER, new_request_id, request_id_var
from services.kit.errors import error_body
from services.kit.metrics import HttpMetrics

_RID_HEADER = REQUEST_ID_HEADER.lower().encode()
# Probes and scrapes are high-rate noise; they are still served, just not counted per route.
_UNMETERED = {"/metrics"}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _BodyTooLarge(Exception):
    pass


# A JSON \uD800-\uDFFF escape: a surrogate. Paired ones decode to one character; a lone one
# becomes a str that cannot be encoded (tokenizers, espeak and httpx then fail with a 500).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def has_lone_surrogate(body: bytes) -> bool:
    """True if a JSON body decodes to text containing an unpaired UTF-16 surrogate."""
    if not _SURROGATE_ESCAPE.search(body):
        return False
    try:
        text = json.dumps(json.loads(body), ensure_ascii=False)
    except (ValueError, RecursionError):
        return False  # not valid JSON: the app's own parser answers with a 4xx
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _valid_rid(raw: bytes) -> str | None:
    # Accept a caller's ID only if it is short and printable, so it cannot forge log lines.
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    if 0 < len(text) <= 128 and all(c.isalnum() or c in "-_.:" for c in text):
        return text
    return None


class ServiceMiddleware:
    """Attach a request ID, check the mesh token, enforce the body limit, record metrics."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: HttpMetrics,
        max_body_bytes: int,
        auth: MeshAuth | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        # None: the app does its own client auth (orchestrator, testing UI).
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = None
        content_length: int | None = None
        is_json = False
        for name, value in scope.get("headers", []):
            if name == _RID_HEADER:
                rid = _valid_rid(value)
            elif name == b"content-type":
                is_json = value.split(b";")[0].strip().lower().endswith(b"json")
            elif name == b"content-length":
                try:
                    content_length = int(value)
                except ValueError:
                    content_length = None
        rid = rid or new_request_id()
        token = request_id_var.set(rid)
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        allowed = True
        if self.auth is not None and scope.get("path", "") not in OPEN_PATHS:
            # Checked before any body is read: an unauthenticated caller costs a header scan.
            principal = self.auth.principal(scope.get("headers", []))
            state["principal"] = principal
            allowed = principal is not None
        try:
            if scope["type"] == "websocket":
                if not allowed:
                    # Closing before accept makes the server answer the handshake with 403.
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await self.app(scope, receive, send)
                return
            if not allowed:
                await self._refuse(scope, send, rid)
                return
            await self._http(scope, receive, send, rid, content_length, is_json)
        finally:
            request_id_var.reset(token)

    async def _http(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        rid: str,
        content_length: int | None,
        is_json: bool,
    ) -> None:
        start = time.perf_counter()
        status_holder = {"status": 500, "started": False}
        limit = self.max_body_bytes
        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                if too_large:
                    return  # the 413 below replaces whatever the app tried to answer
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                headers = list(message.get("headers", []))
                headers.append((_RID_HEADER, rid.encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and too_large:
                return
            await send(message)

        try:
            if content_length is not None and content_length > limit:
                too_large = True
            elif is_json and scope.get("method") in ("POST", "PUT", "PATCH"):
                # JSON bodies are small and bounded: read them whole so text that no encoder
                # accepts is refused here, once, instead of failing deep inside an engine.
                chunks: list[bytes] = []
                more = True
                try:
                    while more:
                        message = await limited_receive()
                        if message["type"] != "http.request":
                            break
                        chunks.append(message.get("body", b""))
                        more = message.get("more_body", False)
                except _BodyTooLarge:
                    too_large = True
                body = b"".join(chunks)
                if not too_large:
                    if has_lone_surrogate(body):
                        await self._send_error(
                            send,
                            rid,
                            400,
                            "request text contains an unpaired UTF-16 surrogate (invalid Unicode)",
                            "invalid_request_error",
                            "invalid_unicode",
                        )
                        status_holder["status"] = 400
                        return
                    replayed = False

                    async def replay() -> Message:
                        nonlocal replayed
                        if not replayed:
                            replayed = True
                            return {"type": "http.request", "body": body, "more_body": False}
                        return await receive()

                    await self.app(scope, replay, tracking_send)
            else:
                try:
                    await self.app(scope, limited_receive, tracking_send)
                except _BodyTooLarge:
                    too_large = True
            if too_large and not status_holder["started"]:
                await self._send_413(send, rid, limit)
                status_holder["status"] = 413
        finally:
            route = _route_of(scope)
            if route not in _UNMETERED:
                self.metrics.observe(
                    route,
                    scope.get("method", "GET"),
                    int(status_holder["status"]),
                    time.perf_counter() - start,
                )

    async def _refuse(self, scope: Scope, send: Send, rid: str) -> None:
        await self._send_error(
            send,
            rid,
            401,
            "missing or invalid mesh token: send 'Authorization: Bearer <MESH_TOKEN>'",
            "authentication_error",
            "invalid_mesh_token",
            [(b"www-authenticate", b"Bearer")],
        )
        # One label for every refused path and method: strangers must not grow the series.
        method = scope.get("method", "GET")
        self.metrics.observe("unauthenticated", method if method in _METHODS else "other", 401, 0.0)

    @classmethod
    async def _send_413(cls, send: Send, rid: str, limit: int) -> None:
        await cls._send_error(
            send,
            rid,
            413,
            f"request body exceeds the limit of {limit} bytes",
            "request_too_large",
            "body_too_large",
        )

    @staticmethod
    async def _send_error(
        send: Send,
        rid: str,
        status: int,
        message: str,
        type_: str,
        code: str,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        body = json.dumps(error_body(message, type_, None, code)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (_RID_HEADER, rid.encode()),
                    (b"connection", b"close"),
                    *(extra_headers or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _route_of(scope: Scope) -> str:
    # The route template (not the raw path) keeps label cardinality bounded.
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
