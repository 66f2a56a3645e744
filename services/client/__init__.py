"""Client library for the orchestrator's public API: HTTP turns, pipelines, health, live sessions.

Imports no server code (no FastAPI, no kit): the CLI, the Discord bot, the testing UI and
benchmarks use it, and services that call other services reuse its error-envelope parser.
"""

from services.client.errors import (
    ErrorDetail,
    OrchestratorError,
    OrchestratorUnavailable,
    parse_error,
    parse_error_text,
)
from services.client.http import OrchestratorClient, RetryPolicy
from services.client.models import PipelineCatalog, StageRecord, TurnResult, parse_catalog

__all__ = [
    "ErrorDetail",
    "OrchestratorClient",
    "OrchestratorError",
    "OrchestratorUnavailable",
    "PipelineCatalog",
    "RetryPolicy",
    "StageRecord",
    "TurnResult",
    "parse_catalog",
    "parse_error",
    "parse_error_text",
]
