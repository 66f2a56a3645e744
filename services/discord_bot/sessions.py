"""Conversation ids for Discord users: unguessable, stable for one user while the bot runs."""

from __future__ import annotations

import hashlib
import hmac
import secrets


class SessionIds:
    """HMAC of (guild, user) under a secret: nobody who lacks it can name a user's session.

    Discord ids are public, so `discord-<guild>-<user>` let any caller with an orchestrator
    key read or poison that user's history. The orchestrator also scopes sessions to the API
    key, so the id is a second wall, not the only one.
    """

    def __init__(self, secret: bytes | None = None) -> None:
        # No configured secret: a random one per process (conversations restart with the bot).
        self._secret = secret or secrets.token_bytes(32)

    def of(self, guild_id: int, user_id: int) -> str:
        """The session id of one user in one guild."""
        digest = hmac.new(self._secret, f"{guild_id}:{user_id}".encode(), hashlib.sha256)
        return "discord-" + digest.hexdigest()[:32]
