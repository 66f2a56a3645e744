"""The live-mode relay: the page's WebSocket to the orchestrator's `WS /v1/realtime`.

The browser speaks the OpenAI Realtime events to `WS /live/realtime?model=<pipeline>` on the
UI's own server; the relay opens the orchestrator's session with the UI's key (which never
reaches the browser) and copies text frames both ways until either side closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.websockets import WebSocketState

from services.client.live import ws_url
from services.kit.errors import error_body
from services.testing_ui.settings import Settings

log = logging.getLogger("testing_ui.live")

STATIC = Path(__file__).parent / "static"
LIVE_JS = STATIC / "live.js"
RELAY_PATH = "/live/realtime"
SCRIPT_PATH = "/live/live.js"
_NORMAL = 1000
_POLICY = 1008
_TOO_BIG = 1009
_INTERNAL = 1011
_TRY_AGAIN_LATER = 1013
# Close codes an endpoint may send (RFC 6455 §7.4: 1005, 1006 and 1015 are never sent).
_SENDABLE = set(range(1000, 1015)) - {1004, 1005, 1006} | set(range(3000, 5000))
_PIPELINE_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")

LoginCheck = Callable[[WebSocket], bool]


def error_event(code: str, message: str) -> str:
    """An OpenAI Realtime `error` event, as the orchestrator sends them."""
    error = {"type": "invalid_request_error", "code": code, "message": message}
    return json.dumps({"type": "error", "error": error})


def same_origin(ws: WebSocket) -> bool:
    """True unless the handshake names an Origin other than this server (CSWSH guard)."""
    # Browsers send the login cookie with cross-site WebSocket handshakes too: without this,
    # any page a logged-in tester visits could open the relay.
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == ws.headers.get("host", "").lower()


def _close_code(code: int | None) -> int:
    return code if code is not None and code in _SENDABLE else _INTERNAL


class Relay:
    """Relays live sessions, at most `live_max_sessions` at once."""

    def __init__(self, settings: Settings, logged_in: LoginCheck) -> None:
        self.settings = settings
        self.logged_in = logged_in
        self.active = 0
        key = settings.orchestrator_api_key
        self._key = key.get_secret_value() if key else ""
        self._base = ws_url(settings.orchestrator_url) + "/realtime"

    def upstream_url(self, model: str | None, session_id: str | None) -> str:
        """The orchestrator's session URL for a pipeline (and conversation)."""
        query = {"model": model or "voice"}
        if session_id:
            query["session_id"] = session_id
        return f"{self._base}?{urlencode(query)}"

    async def deny(self, ws: WebSocket, status: int, message: str, code: str) -> None:
        """Refuse the handshake with an HTTP status and the error envelope."""
        if "websocket.http.response" in ws.scope.get("extensions", {}):
            body = error_body(message, "invalid_request_error", None, code)
            await ws.send_denial_response(JSONResponse(body, status))
        else:
            await ws.close(code=_POLICY, reason=message[:120])

    async def refuse(self, ws: WebSocket, code: str, message: str, close_code: int) -> None:
        """Accept, say why in an `error` event (a page can read it; a 4xx it cannot), close."""
        await ws.accept()
        await ws.send_text(error_event(code, message))
        await ws.close(code=close_code, reason=message[:120])

    async def serve(self, ws: WebSocket, model: str | None, session_id: str | None) -> None:
        """One browser session: admission checks, then the relay."""
        if not same_origin(ws):
            await self.deny(ws, 403, "cross-origin live sessions are refused", "bad_origin")
            return
        if not self.logged_in(ws):
            await self.deny(ws, 401, "log in to the testing UI first", "not_logged_in")
            return
        if model is not None and not (0 < len(model) <= 64 and set(model) <= _PIPELINE_CHARS):
            await self.refuse(ws, "invalid_value", "model must be a pipeline name", _POLICY)
            return
        if self.active >= self.settings.live_max_sessions:
            limit = self.settings.live_max_sessions
            message = f"the testing UI already relays {limit} live sessions; try again later"
            await self.refuse(ws, "live_session_limit_reached", message, _TRY_AGAIN_LATER)
            return
        self.active += 1
        try:
            await self._relay(ws, self.upstream_url(model, session_id))
        finally:
            self.active -= 1

    async def _relay(self, ws: WebSocket, url: str) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus, WebSocketException

        headers = {"Authorization": f"Bearer {self._key}"} if self._key else None
        cap = self.settings.live_max_message_bytes
        try:
            upstream = await connect(
                url,
                additional_headers=headers,
                max_size=cap,
                open_timeout=self.settings.request_timeout_s,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            detail = _envelope_message(exc.response.body) or exc.response.reason_phrase
            message = f"the orchestrator refused the live session (HTTP {status}: {detail})"
            await self.refuse(ws, "orchestrator_refused", message, _INTERNAL)
            return
        except (OSError, TimeoutError, WebSocketException) as exc:
            message = f"the orchestrator is unreachable ({type(exc).__name__})"
            await self.refuse(ws, "orchestrator_unreachable", message, _INTERNAL)
            return
        await ws.accept()
        log.info("live session relayed", extra={"active": self.active})
        async with upstream:
            to_up = asyncio.create_task(self._browser_to_upstream(ws, upstream, cap))
            to_browser = asyncio.create_task(self._upstream_to_browser(ws, upstream))
            done, pending = await asyncio.wait(
                {to_up, to_browser}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            # Whichever side ended, the other is closed with the reason it gave.
            code, reason = done.pop().result()
            await upstream.close(code=_close_code(code), reason=reason[:120])
            if ws.client_state is WebSocketState.CONNECTED:
                # The browser may vanish while being told: nothing is left to tell then.
                with contextlib.suppress(WebSocketDisconnect):
                    await ws.close(code=_close_code(code), reason=reason[:120])

    async def _browser_to_upstream(
        self, ws: WebSocket, upstream: Any, cap: int
    ) -> tuple[int | None, str]:
        from websockets.exceptions import ConnectionClosed

        try:
            return await self._pump_browser(ws, upstream, cap)
        except ConnectionClosed:
            return _closed_by(upstream)
        except WebSocketDisconnect:
            return _NORMAL, "the browser closed the live session"

    async def _pump_browser(self, ws: WebSocket, upstream: Any, cap: int) -> tuple[int, str]:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return _NORMAL, "the browser closed the live session"
            text = message.get("text")
            if text is None:
                await ws.send_text(
                    error_event("invalid_event", "the live session takes JSON text frames only")
                )
                continue
            if len(text.encode()) > cap:
                # Dropped here, so an oversize frame never costs the orchestrator anything.
                await ws.send_text(
                    error_event(
                        "message_too_large",
                        f"a live message may be {cap} bytes at most (UI_LIVE_MAX_MESSAGE_BYTES)",
                    )
                )
                continue
            await upstream.send(text)

    async def _upstream_to_browser(self, ws: WebSocket, upstream: Any) -> tuple[int | None, str]:
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in upstream:
                if isinstance(message, bytes):
                    continue  # the Realtime protocol is text; nothing binary is relayed
                await ws.send_text(message)
        except ConnectionClosed as exc:
            # websockets closes with 1009 itself when a message exceeds max_size.
            if exc.sent is not None and exc.sent.code == _TOO_BIG:
                text = "the orchestrator sent a message over UI_LIVE_MAX_MESSAGE_BYTES"
                with contextlib.suppress(WebSocketDisconnect):
                    await ws.send_text(error_event("message_too_large", text))
                return _TOO_BIG, text
        except WebSocketDisconnect:
            return _NORMAL, "the browser closed the live session"
        return _closed_by(upstream)


def _closed_by(upstream: Any) -> tuple[int | None, str]:
    """The code and reason the orchestrator closed with (1011 when it just dropped)."""
    received = upstream.close_rcvd
    if received is None:
        return _INTERNAL, "the orchestrator's connection dropped"
    return received.code, received.reason or "the orchestrator closed the live session"


def _envelope_message(body: bytes | None) -> str | None:
    try:
        message = json.loads(body or b"")["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return None
    return str(message)[:200]


def live_router(settings: Settings, logged_in: LoginCheck) -> tuple[APIRouter, Relay]:
    """The relay route (behind the page's login) and the page's script (public code, no secret)."""
    router = APIRouter()
    relay = Relay(settings, logged_in)

    @router.websocket(RELAY_PATH)
    async def live(ws: WebSocket, model: str | None = None, session_id: str | None = None) -> None:
        """Relay one live session to the orchestrator (events: docs/services/realtime.md)."""
        await relay.serve(ws, model, session_id)

    @router.get(SCRIPT_PATH, include_in_schema=False)
    async def script() -> Response:
        """The page's live client (plain JS, no build step)."""
        return FileResponse(LIVE_JS, media_type="text/javascript")

    return router, relay
