"""The interface session-history backends implement."""

from __future__ import annotations

from typing import Protocol, TypedDict


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
