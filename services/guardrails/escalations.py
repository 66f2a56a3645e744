"""Escalations kept in SQLite so a human can review what the guardrails could not settle."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS escalations (
    ticket_id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    reason TEXT NOT NULL,
    context TEXT NOT NULL,
    request_id TEXT,
    status TEXT NOT NULL DEFAULT 'open'
)
"""


class EscalationStore:
    """A small SQLite table; one connection guarded by a lock (calls are sub-millisecond)."""

    def __init__(self, path: str) -> None:
        if path != ":memory:" and not path.startswith("file:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, uri=path.startswith("file:"))
        with self._lock:
            self._db.execute(_SCHEMA)
            self._db.commit()

    def add(self, reason: str, context: Any, request_id: str | None) -> dict[str, Any]:
        """Store one escalation and return it with its new ticket id."""
        row = {
            "ticket_id": f"esc_{uuid.uuid4().hex[:20]}",
            "created_at": time.time(),
            "reason": reason,
            "context": context,
            "request_id": request_id,
            "status": "open",
        }
        with self._lock:
            self._db.execute(
                "INSERT INTO escalations (ticket_id, created_at, reason, context, request_id, "
                "status) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    row["ticket_id"],
                    row["created_at"],
                    reason,
                    json.dumps(context),
                    request_id,
                    "open",
                ),
            )
            self._db.commit()
        return row

    def list(self, limit: int, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Newest escalations first, and how many there are in all."""
        with self._lock:
            total = int(self._db.execute("SELECT COUNT(*) FROM escalations").fetchone()[0])
            rows = self._db.execute(
                "SELECT ticket_id, created_at, reason, context, request_id, status "
                "FROM escalations ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
        items = [
            {
                "ticket_id": r[0],
                "created_at": r[1],
                "reason": r[2],
                "context": json.loads(r[3]),
                "request_id": r[4],
                "status": r[5],
            }
            for r in rows
        ]
        return items, total

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()
