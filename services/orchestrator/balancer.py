"""Spread a provider's calls over every address its host resolves to (its replicas).

Docker Swarm with `endpoint_mode: dnsrr`, `docker compose --scale` and a Kubernetes headless
Service all answer one name with one address per replica. Without this, a client connects to
whichever address the resolver lists first and keeps that keep-alive connection: one replica
gets the load. Here each call takes the replica with the fewest calls in flight (ties broken
at random), a replica that fails is skipped for a short cool-down while its siblings serve
(a circuit breaker per address, beside the executor's per-provider one), a call that never
reached its replica (connection refused or timed out, or a 503 "not ready") is sent to a
sibling at once, and the name is resolved again every `refresh_s` so new replicas join and
removed ones leave. Both the stage calls (aiohttp) and the LangChain client (httpx) go
through one `Balancer`, so their in-flight counts add up.

Only plain `http://` URLs whose host is a name are balanced: an IP literal has one address,
and an `https://` provider (a cloud API) has its own load balancer and a certificate for its
name, not for the addresses behind it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar
from urllib.parse import urlsplit

import httpx

from services.orchestrator.breaker import CircuitBreaker
from services.orchestrator.metrics import ReplicaMetrics

log = logging.getLogger("orchestrator.balancer")

Resolver = Callable[[str, int], Awaitable[list[str]]]


async def dns_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host (IPv4 and IPv6), in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def static_resolver(table: Mapping[str, Sequence[str]]) -> Resolver:
    """A resolver answering from a table (host → addresses); unknown hosts fail like DNS."""

    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"cannot resolve {host}")
        return list(table[host])

    return resolve


class Outcome(Enum):
    """How a call to one replica ended, as far as that replica's health goes."""

    OK = "ok"  # it answered (any status but 5xx: a 4xx is the request's fault)
    FAILED = "failed"  # connect error, timeout, disconnect or 5xx
    BUSY = "busy"  # 429: alive but full; no verdict (a breaker would turn load into outage)
    ABANDONED = "abandoned"  # the caller went away; no verdict


@dataclass
class Replica:
    """One address of a provider's host."""

    address: str
    breaker: CircuitBreaker
    outstanding: int = 0

    def available(self) -> bool:
        """Closed, or half-open with no probe out: it may take the next call."""
        state = self.breaker.state
        return state == "closed" or (state == "half_open" and not self.breaker.probing)


@dataclass
class Lease:
    """One call's claim on a replica; `release` it exactly once with the outcome."""

    pool: Pool
    replica: Replica
    released: bool = False

    @property
    def address(self) -> str:
        """The replica's address."""
        return self.replica.address

    @property
    def host_header(self) -> str:
        """The Host header the replica expects (the provider's own host:port)."""
        return self.pool.netloc

    def release(self, outcome: Outcome) -> None:
        """The call is over: free its slot and tell the replica's breaker."""
        if self.released:
            return
        self.released = True
        self.pool.finish(self.replica, outcome)


@dataclass
class Pool:
    """The replicas behind one host:port, re-resolved every `refresh_s`."""

    host: str
    port: int
    netloc: str
    settings: BalancerSettings
    resolver: Resolver
    metrics: ReplicaMetrics | None
    clock: Callable[[], float]
    replicas: dict[str, Replica] = field(default_factory=dict)
    resolved_at: float | None = None
    refreshing: asyncio.Task[None] | None = None

    async def ensure_fresh(self) -> None:
        """Resolve now if never resolved; start a background refresh when the list is old."""
        if self.resolved_at is None:
            await self.refresh()
        elif self.clock() - self.resolved_at >= self.settings.refresh_s and (
            self.refreshing is None or self.refreshing.done()
        ):
            # Callers keep using the current list meanwhile: no call waits on DNS.
            self.refreshing = asyncio.create_task(self.refresh())

    async def refresh(self) -> None:
        """Resolve the host; add new addresses, drop gone ones (their calls in flight finish)."""
        try:
            addresses = await self.resolver(self.host, self.port)
        except OSError as exc:
            # Keep the last good list: a DNS hiccup must not take every replica away. With no
            # list at all, calls go to the URL as written and fail (or not) there.
            log.warning("cannot resolve %s: %s", self.host, exc, extra={"host": self.host})
            self.resolved_at = self.clock()
            return
        self.resolved_at = self.clock()
        if not addresses:
            return
        joined = [a for a in addresses if a not in self.replicas]
        gone = [a for a in self.replicas if a not in addresses]
        for address in joined:
            self.replicas[address] = Replica(address, self._breaker(address))
        for address in gone:
            del self.replicas[address]
            if self.metrics:
                self.metrics.forget(self.host, address)
        if self.metrics:
            self.metrics.replicas.labels(self.host).set(len(self.replicas))
        if joined or gone:
            log.info(
                "replicas of %s: %d (%d joined, %d left)",
                self.host,
                len(self.replicas),
                len(joined),
                len(gone),
                extra={"host": self.host, "joined": joined, "left": gone},
            )

    def _breaker(self, address: str) -> CircuitBreaker:
        host, metrics = self.host, self.metrics

        def changed(is_open: bool) -> None:
            if metrics:
                metrics.circuit_open.labels(host, address).set(1 if is_open else 0)
            log.warning(
                "replica circuit %s",
                "opened" if is_open else "closed",
                extra={"host": host, "address": address},
            )

        return CircuitBreaker(
            self.settings.failure_threshold,
            self.settings.cooldown_s,
            self.clock,
            on_change=changed,
        )

    def pick(self, exclude: set[str]) -> Lease | None:
        """The replica for the next call (None when every address is in `exclude`)."""
        candidates = [r for a, r in self.replicas.items() if a not in exclude]
        if not candidates:
            return None
        # Replicas whose circuit is open sit out; when every one is open, try them anyway
        # (fewest in flight): the executor's per-provider breaker then sees the real outcome.
        pool = [r for r in candidates if r.available()] or candidates
        # A replica whose cool-down is over gets the next call as its probe, so one that
        # came back rejoins at once instead of when a tie happens to pick it.
        probes = [r for r in pool if r.breaker.state == "half_open" and not r.breaker.probing]
        if probes:
            pool = probes
        fewest = min(r.outstanding for r in pool)
        replica = random.choice([r for r in pool if r.outstanding == fewest])
        replica.breaker.allow()  # takes the half-open probe slot when it is one
        replica.outstanding += 1
        if self.metrics:
            self.metrics.outstanding.labels(self.host, replica.address).set(replica.outstanding)
        return Lease(self, replica)

    def finish(self, replica: Replica, outcome: Outcome) -> None:
        """Book a finished call against its replica."""
        replica.outstanding -= 1
        if outcome is Outcome.OK:
            replica.breaker.success()
        elif outcome is Outcome.FAILED:
            replica.breaker.failure()
        else:
            replica.breaker.abandon()
        if self.metrics:
            self.metrics.requests.labels(self.host, replica.address, outcome.value).inc()
            if self.replicas.get(replica.address) is replica:
                self.metrics.outstanding.labels(self.host, replica.address).set(replica.outstanding)

    def snapshot(self) -> list[dict[str, object]]:
        """State of each replica, for /v1/pipelines."""
        return [
            {
                "address": r.address,
                "outstanding": r.outstanding,
                "state": r.breaker.state,
                "failures": r.breaker.failures,
            }
            for r in self.replicas.values()
        ]


@dataclass(frozen=True)
class BalancerSettings:
    """How replicas are chosen, skipped and re-discovered."""

    refresh_s: float = 5.0
    failure_threshold: int = 1
    cooldown_s: float = 5.0
    connect_timeout_s: float = 2.0


class Balancer:
    """The replica pools of every balanced provider host, shared by all clients."""

    def __init__(
        self,
        settings: BalancerSettings | None = None,
        resolver: Resolver = dns_resolve,
        metrics: ReplicaMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or BalancerSettings()
        self.resolver = resolver
        self.metrics = metrics
        self.clock = clock
        self._pools: dict[tuple[str, int], Pool] = {}

    async def pool(self, url: str) -> Pool | None:
        """The replicas behind this URL's host, or None when the URL is not balanced."""
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme != "http" or not host or _is_ip(host):
            return None
        port = parts.port or 80
        key = (host, port)
        pool = self._pools.get(key)
        if pool is None:
            pool = Pool(
                host, port, parts.netloc, self.settings, self.resolver, self.metrics, self.clock
            )
            self._pools[key] = pool
        await pool.ensure_fresh()
        return pool if pool.replicas else None

    def snapshot(self) -> dict[str, list[dict[str, object]]]:
        """Every pool's replicas by host:port."""
        return {f"{h}:{p}": pool.snapshot() for (h, p), pool in self._pools.items()}

    async def aclose(self) -> None:
        """Stop background refreshes."""
        for pool in self._pools.values():
            if pool.refreshing is not None and not pool.refreshing.done():
                pool.refreshing.cancel()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def with_address(url: str, address: str) -> str:
    """The URL with its host replaced by `address` (IPv6 in brackets), port and path kept."""
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc).geturl()


def outcome_of(status: int) -> Outcome:
    """A replica's health verdict from its reply status."""
    if status >= 500:
        return Outcome.FAILED
    if status == 429:
        return Outcome.BUSY
    return Outcome.OK


R = TypeVar("R")


async def send_balanced(
    balancer: Balancer | None,
    url: str,
    send: Callable[[str, str | None], Awaitable[R]],
    status_of: Callable[[R], int],
    not_connected: tuple[type[BaseException], ...],
    discard: Callable[[R], Awaitable[None]],
) -> tuple[R, Lease | None]:
    """Send to the best replica; move to a sibling when the call never reached its replica.

    `send(url, host_header)` makes the call (host_header None: the URL as written). "Never
    reached": an error in `not_connected` (refused, unreachable, connect timeout) or a 503
    (our services' "not ready yet", e.g. a replica still loading its model); both are safe to
    send again. The caller releases the returned lease with `outcome_of(status)` once the
    reply is read.
    """
    pool = await balancer.pool(url) if balancer is not None else None
    if pool is None:
        return await send(url, None), None
    tried: set[str] = set()
    last: BaseException | None = None
    while (lease := pool.pick(tried)) is not None:
        tried.add(lease.address)
        try:
            result = await send(with_address(url, lease.address), lease.host_header)
        except not_connected as exc:
            lease.release(Outcome.FAILED)
            last = exc
            continue
        except asyncio.CancelledError:
            lease.release(Outcome.ABANDONED)
            raise
        except BaseException:
            lease.release(Outcome.FAILED)
            raise
        status = status_of(result)
        if status == 503 and any(a not in tried for a in pool.replicas):
            lease.release(Outcome.FAILED)
            await discard(result)
            continue
        return result, lease
    assert last is not None  # a pool has replicas, so at least one was tried
    raise last


class _ReleasingStream(httpx.AsyncByteStream):
    """A reply body that releases its replica lease when closed (read or not)."""

    def __init__(self, inner: httpx.AsyncByteStream, lease: Lease, outcome: Outcome) -> None:
        self.inner = inner
        self.lease = lease
        self.outcome = outcome

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.inner:
                yield chunk
        except BaseException:
            self.outcome = Outcome.FAILED  # cut off mid-reply (a replica that died)
            raise

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            self.lease.release(self.outcome)


class BalancedTransport(httpx.AsyncBaseTransport):
    """httpx transport that sends each request to one replica of its host (see module doc)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, balancer: Balancer) -> None:
        self.inner = inner
        self.balancer = balancer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Pick a replica, rewrite the connection target, keep the Host header."""

        async def send(url: str, host_header: str | None) -> httpx.Response:
            if host_header is None:
                return await self.inner.handle_async_request(request)
            extensions = dict(request.extensions)
            timeout = dict(extensions.get("timeout") or {})
            connect = timeout.get("connect")
            limit = self.balancer.settings.connect_timeout_s
            timeout["connect"] = limit if connect is None else min(connect, limit)
            extensions["timeout"] = timeout
            # request.headers already holds the provider's Host; the stream is replayable
            # (bytes or a form the SDK built), so a resend to a sibling carries the body.
            target = httpx.Request(
                request.method,
                httpx.URL(url),
                headers=request.headers,
                stream=request.stream,
                extensions=extensions,
            )
            return await self.inner.handle_async_request(target)

        async def discard(response: httpx.Response) -> None:
            await response.aclose()

        response, lease = await send_balanced(
            self.balancer,
            str(request.url),
            send,
            lambda r: r.status_code,
            (httpx.ConnectError, httpx.ConnectTimeout),
            discard,
        )
        if lease is not None:
            assert isinstance(response.stream, httpx.AsyncByteStream)
            response.stream = _ReleasingStream(
                response.stream, lease, outcome_of(response.status_code)
            )
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
