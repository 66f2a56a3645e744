"""In-memory session history with TTL, turn cap and LRU eviction (one process only)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from services.orchestrator.history import Turn


class MemoryHistoryStore:
    """Sessions in a dict; each expires `ttl_s` after its last write."""

    name = "memory"

    def __init__(
        self,
        ttl_s: float,
        max_messages: int,
        max_sessions: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_messages = max_messages
        self.max_sessions = max_sessions
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, list[Turn]]] = OrderedDict()

    async def load(self, session_id: str) -> list[Turn]:
        """The session's turns, oldest first."""
        entry = self._data.get(session_id)
        if entry is None:
            return []
        expires, turns = entry
        if self._clock() >= expires:
            del self._data[session_id]
            return []
        return list(turns)

    async def append(self, session_id: str, turns: list[Turn]) -> None:
        """Add turns, trim to the newest `max_messages`, refresh the TTL."""
        current = await self.load(session_id)
        current.extend(turns)
        current = current[-self.max_messages :] if self.max_messages else []
        self._data[session_id] = (self._clock() + self.ttl_s, current)
        self._data.move_to_end(session_id)
        while len(self._data) > self.max_sessions:
            self._data.popitem(last=False)

    async def close(self) -> None:
        """Nothing to release."""
        self._data.clear()
