"""Wyoming protocol plumbing for the services' Home Assistant endpoints.

A `WyomingServer` is an asyncio TCP server started beside a service's HTTP app, in the same
process and event loop. It frames events itself, with limits (the `wyoming` package's reader
trusts the sender's lengths and reads whatever it is told), answers `describe` only when the
service is ready, drops unknown event types as the protocol asks, answers bad input with an
`error` event and survives clients that vanish. Each service supplies a `Session` per
connection that handles its own event types.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict

from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import Attribution, Info

from services.kit.app import ServiceState, ShutdownHook, StartupHook

log = logging.getLogger("kit.wyoming")

DESCRIBE = "describe"

# Networks a "private" allow-list means: loopback, RFC 1918, link-local and IPv6 ULA.
PRIVATE_NETWORKS = (
    "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,169.254.0.0/16,fc00::/7"
)


@dataclass(frozen=True)
class Limits:
    """Largest parts of one event a client may send; beyond them the connection is closed."""

    # The JSON header line; a real one is a few hundred bytes.
    header_bytes: int = 64 * 1024
    # The separate `data` JSON block (info, long synthesize texts).
    data_bytes: int = 1024 * 1024
    # One binary payload (an audio chunk). Home Assistant sends ~2 KiB chunks; a client that
    # sends a whole 30 s clip at 16 kHz in one chunk still fits.
    payload_bytes: int = 4 * 1024 * 1024


class EventError(Exception):
    """A well-framed event the session refuses; answered with an `error` event."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ProtocolError(EventError):
    """The byte stream cannot be trusted any more; answered, then the connection closes."""


def _length(header: dict[str, Any], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError("malformed_event", f"{key} must be a non-negative integer")
    if value > limit:
        raise ProtocolError(
            "payload_too_large" if key == "payload_length" else "data_too_large",
            f"{key} {value} exceeds the limit of {limit} bytes",
        )
    return value


async def read_event(reader: asyncio.StreamReader, limits: Limits) -> Event | None:
    """Read one event within `limits`; None at a clean end of stream."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise ProtocolError("truncated_event", "connection closed inside an event") from exc
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError(
            "header_too_large", f"event header exceeds {limits.header_bytes} bytes"
        ) from exc
    try:
        header = json.loads(line)
    except ValueError as exc:
        raise ProtocolError("malformed_event", "event header is not JSON") from exc
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError("malformed_event", "event header has no string 'type'")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise ProtocolError("malformed_event", "event 'data' is not an object")
    data_length = _length(header, "data_length", limits.data_bytes)
    payload_length = _length(header, "payload_length", limits.payload_bytes)
    try:
        if data_length:
            extra = json.loads(await reader.readexactly(data_length))
            if not isinstance(extra, dict):
                raise ProtocolError("malformed_event", "event data block is not an object")
            data.update(extra)
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError("truncated_event", "connection closed inside an event") from exc
    except ValueError as exc:
        raise ProtocolError("malformed_event", "event data block is not JSON") from exc
    return Event(type=header["type"], data=data, payload=payload)


class Channel:
    """The sending side of one connection."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def send(self, event: Event) -> None:
        """Write one event (ConnectionError when the client is gone)."""
        await async_write_event(event, self._writer)

    async def send_error(self, code: str, text: str) -> None:
        """Tell the client what went wrong; a client that is already gone is not an error."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.send(Error(text=text, code=code).event())


class Session(ABC):
    """One client connection of one service: its request state and event handlers."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    @abstractmethod
    def handlers(self) -> dict[str, Callable[[Event], Awaitable[bool]]]:
        """Event type -> handler; a handler returns False to close the connection."""

    async def close(self) -> None:  # noqa: B027 (optional hook; most sessions hold nothing)
        """Release what the connection holds (also when the client vanished mid-request)."""


@dataclass
class WyomingService:
    """What a service plugs into the server: readiness, its info, a session per connection."""

    not_ready: Callable[[], str | None]  # None when ready, else the reason
    info: Callable[[], Info]
    session: Callable[[Channel], Session]


def parse_networks(spec: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated CIDRs (`private` = loopback and private ranges); empty = everyone."""
    items = [s.strip() for s in spec.replace("private", PRIVATE_NETWORKS).split(",")]
    return [ipaddress.ip_network(s, strict=False) for s in items if s]


@dataclass
class WyomingServer:
    """A Wyoming TCP endpoint beside the HTTP app."""

    name: str
    service: WyomingService
    host: str = "0.0.0.0"
    port: int = 0
    allow: str = ""
    limits: Limits = field(default_factory=Limits)
    error: str | None = None
    _server: asyncio.AbstractServer | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        """Listen; a port that cannot be bound is reported in `status`, not raised."""
        self._networks = parse_networks(self.allow)
        try:
            self._server = await asyncio.start_server(
                self._accept, self.host, self.port, limit=self.limits.header_bytes
            )
        except OSError as exc:
            # The HTTP API stays up: readiness shows why Home Assistant cannot connect.
            self.error = f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            log.error("wyoming server not started", extra={"error": self.error})
            return
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("wyoming server listening", extra={"host": self.host, "port": self.port})

    async def stop(self) -> None:
        """Stop listening and end every open connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    def status(self) -> dict[str, Any]:
        """What readiness reports about this endpoint."""
        out: dict[str, Any] = {
            "listening": self._server is not None,
            "host": self.host,
            "port": self.port,
        }
        if self.allow:
            out["allow"] = self.allow
        if self.error:
            out["error"] = self.error
        return out

    def _allowed(self, peer: Any) -> bool:
        if not self._networks:
            return True
        try:
            ip = ipaddress.ip_address(peer[0])
        except (TypeError, ValueError, IndexError):
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self._networks)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if not self._allowed(writer.get_extra_info("peername")):
                log.warning("wyoming connection refused by the allow-list")
                return
            await self._serve(reader, Channel(writer))
        except asyncio.CancelledError:
            pass  # server stopping
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, channel: Channel) -> None:
        session = self.service.session(channel)
        table = session.handlers()
        try:
            while True:
                try:
                    event = await read_event(reader, self.limits)
                except ProtocolError as exc:
                    log.warning("wyoming protocol error", extra={"code": exc.code})
                    await channel.send_error(exc.code, str(exc))
                    return
                if event is None:
                    return
                if not await self._dispatch(event, table, channel):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            log.info("wyoming client went away mid-request")
        except Exception as exc:  # a bug here must not take the server down with it
            log.error("wyoming handler failed", exc_info=True, extra={"error": type(exc).__name__})
            await channel.send_error("internal_error", f"{type(exc).__name__} in {self.name}")
        finally:
            await session.close()

    async def _dispatch(
        self,
        event: Event,
        table: dict[str, Callable[[Event], Awaitable[bool]]],
        channel: Channel,
    ) -> bool:
        handler = table.get(event.type)
        if event.type != DESCRIBE and handler is None:
            # The protocol says servers drop events they do not know (newer clients send some).
            log.debug("wyoming event ignored", extra={"type": event.type})
            return True
        reason = self.service.not_ready()
        if reason is not None:
            await channel.send_error("not_ready", f"{self.name} is not ready: {reason}")
            return True
        if event.type == DESCRIBE:
            await channel.send(self.service.info().event())
            return True
        assert handler is not None
        try:
            return await handler(event)
        except ProtocolError:
            raise
        except EventError as exc:
            await channel.send_error(exc.code, str(exc))
            return True
        except (KeyError, TypeError, ValueError) as exc:
            # The wyoming dataclasses raise these on events missing required fields.
            await channel.send_error("invalid_event", f"bad {event.type} event: {exc!r}")
            return True


class WyomingSettings(Protocol):
    """The settings every service's Wyoming endpoint reads (`<PREFIX>_WYOMING_*`)."""

    @property
    def wyoming_enabled(self) -> bool:
        """Whether the endpoint runs at all."""
        ...

    @property
    def wyoming_host(self) -> str:
        """Bind address."""
        ...

    @property
    def wyoming_port(self) -> int:
        """TCP port (0 = any free one)."""
        ...

    @property
    def wyoming_allow(self) -> str:
        """Networks allowed to connect (see `parse_networks`)."""
        ...


def server_factory(
    name: str,
    settings: WyomingSettings,
    info: Callable[[ServiceState], Info],
    session: Callable[[Channel, ServiceState], Session],
) -> Callable[[ServiceState], WyomingServer | None]:
    """The factory `with_wyoming` calls at startup (None when the settings disable it).

    Its server answers `not_ready` until the service serves, `info(state)` for `describe`,
    and runs a `session(channel, state)` per connection.
    """

    def make(state: ServiceState) -> WyomingServer | None:
        if not settings.wyoming_enabled:
            return None

        def not_ready() -> str | None:
            return None if state.readiness.ready else state.readiness.reason

        return WyomingServer(
            name,
            WyomingService(not_ready, lambda: info(state), lambda ch: session(ch, state)),
            host=settings.wyoming_host,
            port=settings.wyoming_port,
            allow=settings.wyoming_allow,
        )

    return make


def with_wyoming(
    make: Callable[[ServiceState], WyomingServer | None],
    startup: StartupHook,
    shutdown: ShutdownHook | None = None,
) -> tuple[StartupHook, ShutdownHook]:
    """Wrap a service's startup/shutdown hooks so its Wyoming server runs beside the app.

    The server listens before the model loads (clients get `not_ready` meanwhile) and its
    status joins the readiness details once the service's own startup has set them.
    """

    running: list[WyomingServer] = []  # the app's server, for shutdown

    async def wrapped_startup(state: ServiceState) -> None:
        server = make(state)
        if server is not None:
            running.append(server)
            await server.start()
        await startup(state)
        if server is not None:
            state.readiness.details["wyoming"] = server.status()

    async def wrapped_shutdown(state: ServiceState) -> None:
        while running:
            await running.pop().stop()
        if shutdown is not None:
            await shutdown(state)

    return wrapped_startup, wrapped_shutdown


class Described(TypedDict):
    """The fields every Wyoming program, model and voice in an `info` event repeats."""

    attribution: Attribution
    installed: bool
    version: str | None


def described(attribution: Attribution, version: str | None = None) -> Described:
    """Attribution, installed and version for one entry of an `info` event."""
    return {"attribution": attribution, "installed": True, "version": version}
