"""Conversation history: the store interface, its turns, and the one place a store is opened."""

from __future__ import annotations

from typing import Protocol, TypedDict

from services.orchestrator.settings import Settings


class Turn(TypedDict):
    """One message of a conversation."""

    role: str  # "user" or "assistant"
    content: str


class HistoryStore(Protocol):
    """Per-session conversation history; sessions never see each other's turns."""

    name: str

    async def load(self, session_id: str) -> list[Turn]:
        """The session's turns, oldest first (empty when unknown or expired)."""
        ...

    async def append(self, session_id: str, turns: list[Turn]) -> None:
        """Add turns, keep only the newest ones and refresh the session's TTL."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


async def open_history(settings: Settings) -> HistoryStore:
    """Redis when `REDIS_URL` is set (pinged: unreachable keeps readiness at 503), else memory."""
    if settings.redis_url:
        from services.orchestrator.backends.redis import RedisHistoryStore

        store = RedisHistoryStore(
            settings.redis_url, settings.session_ttl_s, settings.session_max_turns * 2
        )
        await store.ping()
        return store
    from services.orchestrator.backends.memory import MemoryHistoryStore

    return MemoryHistoryStore(
        settings.session_ttl_s, settings.session_max_turns * 2, settings.max_sessions
    )
