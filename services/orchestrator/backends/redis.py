"""Redis session history: shared by every orchestrator replica, expiring with a TTL."""

from __future__ import annotations

import json
from typing import Any

from services.orchestrator.history import Turn


class RedisHistoryStore:
    """One Redis list per session (`orch:session:<id>`), trimmed and expired on each write."""

    name = "redis"

    def __init__(
        self, url: str, ttl_s: float, max_messages: int, prefix: str = "orch:session:"
    ) -> None:
        import redis.asyncio as aioredis

        self._redis: Any = aioredis.from_url(url, decode_responses=True)
        self.ttl_s = ttl_s
        self.max_messages = max_messages
        self.prefix = prefix

    async def ping(self) -> None:
        """Fail fast at startup when Redis is unreachable."""
        await self._redis.ping()

    async def load(self, session_id: str) -> list[Turn]:
        """The session's turns, oldest first."""
        raw = await self._redis.lrange(self.prefix + session_id, 0, -1)
        turns: list[Turn] = []
        for item in raw:
            data = json.loads(item)
            turns.append(Turn(role=str(data["role"]), content=str(data["content"])))
        return turns

    async def append(self, session_id: str, turns: list[Turn]) -> None:
        """Push, trim and refresh the TTL in one transaction."""
        key = self.prefix + session_id
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, *[json.dumps(dict(t)) for t in turns])
            if self.max_messages:
                pipe.ltrim(key, -self.max_messages, -1)
            else:
                pipe.delete(key)
            pipe.expire(key, max(1, int(self.ttl_s)))
            await pipe.execute()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
