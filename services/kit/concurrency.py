"""Bounded work queue: blocking model calls run in threads, excess load gets a clear 429/503."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from services.kit.errors import ApiError

P = ParamSpec("P")
T = TypeVar("T")


class WorkLimiter:
    """Run at most `max_concurrent` jobs at once with at most `max_queue` waiting."""

    def __init__(self, max_concurrent: int = 1, max_queue: int = 8, name: str = "work") -> None:
        self.max_concurrent = max(1, max_concurrent)
        self.max_queue = max(0, max_queue)
        self.name = name
        self._sem = asyncio.Semaphore(self.max_concurrent)
        self._waiting = 0
        self._running = 0

    @property
    def waiting(self) -> int:
        """Jobs queued, not yet running."""
        return self._waiting

    @property
    def running(self) -> int:
        """Jobs running now."""
        return self._running

    def _admit(self) -> None:
        if self._running >= self.max_concurrent and self._waiting >= self.max_queue:
            raise ApiError(
                429,
                f"{self.name} queue is full ({self.max_queue} waiting); retry shortly",
                code="queue_full",
                headers={"Retry-After": "1"},
            )

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking function in a worker thread once a slot is free."""
        await self.acquire()
        try:
            return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))
        finally:
            self.release()

    async def acquire(self) -> None:
        """Take a slot for work the caller drives itself (e.g. a token stream)."""
        self._admit()
        self._waiting += 1
        try:
            await self._sem.acquire()
        finally:
            self._waiting -= 1
        self._running += 1

    def release(self) -> None:
        """Give back a slot taken with `acquire`."""
        self._running -= 1
        self._sem.release()
