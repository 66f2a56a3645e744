"""Outbound HTTP: one pooled client that forwards the request ID."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx

from services.kit.context import REQUEST_ID_HEADER, current_request_id


async def _add_request_id(request: httpx.Request) -> None:
    rid = current_request_id()
    if rid and REQUEST_ID_HEADER not in request.headers:
        request.headers[REQUEST_ID_HEADER] = rid


class _CappedStream(httpx.AsyncByteStream):
    """A response body that fails with a transport error once it passes `limit` bytes."""

    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self.inner = inner
        self.limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self.inner:
            size += len(chunk)
            if size > self.limit:
                raise httpx.ReadError(f"reply exceeds the limit of {self.limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class CappedTransport(httpx.AsyncBaseTransport):
    """Refuse reply bodies over `limit` bytes: by Content-Length at once, else while reading.

    The error is an `httpx.ReadError`, a transport failure: SDKs built on httpx (openai,
    LangChain's ChatOpenAI) report it as a connection error, which callers treat as
    transient, so a provider that sends too much is failed over, never read unbounded.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int) -> None:
        self.inner = inner
        self.limit = limit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send the request; wrap the reply's body in the size check."""
        response = await self.inner.handle_async_request(request)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await response.aclose()
            raise httpx.ReadError(
                f"reply of {declared} bytes exceeds the limit of {self.limit}", request=request
            )
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _CappedStream(response.stream, self.limit)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def make_client(
    timeout_s: float = 30.0,
    max_connections: int = 100,
    bearer: str | None = None,
    max_response_bytes: int | None = None,
    wrap: Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport] | None = None,
) -> httpx.AsyncClient:
    """A keep-alive AsyncClient that passes X-Request-ID downstream (and `bearer`, if given).

    With `max_response_bytes`, a reply body larger than that fails with `httpx.ReadError`.
    `wrap` puts a transport of the caller's around the network one (the orchestrator's
    replica balancer).
    """
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        # Below uvicorn's 5 s server-side keep-alive: a connection reused just as the
        # server closes it fails with "server disconnected".
        keepalive_expiry=4.0,
    )
    transport: httpx.AsyncBaseTransport | None = None
    if max_response_bytes is not None:
        transport = CappedTransport(httpx.AsyncHTTPTransport(limits=limits), max_response_bytes)
    if wrap is not None:
        transport = wrap(transport or httpx.AsyncHTTPTransport(limits=limits))
    return httpx.AsyncClient(
        headers={"Authorization": f"Bearer {bearer}"} if bearer else None,
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
        limits=limits,
        transport=transport,
        event_hooks={"request": [_add_request_id]},
    )
