"""JSON log lines carrying the service name and request ID."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from services.kit.context import current_request_id

# Attributes every LogRecord has; anything else was passed via `extra=` and is emitted as a field.
_STD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format records as one JSON object per line."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as JSON."""
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "request_id": getattr(record, "request_id", None) or current_request_id(),
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and key not in out:
                out[key] = (
                    value if isinstance(value, str | int | float | bool | None) else repr(value)
                )
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """Human-readable lines for local development."""

    def __init__(self, service: str) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s " + service + " [%(rid)s] %(name)s: %(message)s"
        )

    def format(self, record: logging.LogRecord) -> str:
        """Render with the request ID."""
        record.rid = current_request_id() or "-"
        return super().format(record)


def configure_logging(service: str, level: str = "INFO", json_lines: bool = True) -> None:
    """Send all logs (uvicorn's included) to stderr in one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if json_lines else PlainFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # Access lines duplicate our own request metrics and would log every health probe.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
