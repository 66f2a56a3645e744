"""HTTP routes; built per app because slowapi's decorator needs that app's limiter."""

# No `from __future__ import annotations` here: FastAPI reads these signatures through
# slowapi's wrapper, whose module globals cannot resolve string annotations.
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from slowapi import Limiter

from services.guardrails.deps import DepsDep, SettingsDep
from services.guardrails.schemas import (
    EscalationIn,
    EscalationOut,
    InputIn,
    InputVerdict,
    OutputIn,
    OutputVerdict,
)
from services.guardrails.settings import Settings
from services.kit import ApiError
from services.kit.auth import check_admin, split_keys
from services.kit.limits import check_text_length


def _check_history(history: list[str], settings: Settings) -> None:
    if len(history) > settings.max_history_items:
        raise ApiError(
            400,
            f"history holds {len(history)} texts; the limit is {settings.max_history_items}",
            param="history",
            code="history_too_long",
        )
    for i, item in enumerate(history):
        check_text_length(item, settings.max_input_chars, f"history.{i}", name=f"history[{i}]")
    total = sum(len(item) for item in history)
    if total > settings.max_history_chars:
        raise ApiError(
            400,
            f"history is {total} characters; the limit is {settings.max_history_chars}",
            param="history",
            code="history_too_long",
        )


def _admin_only(request: Request, settings: SettingsDep) -> None:
    # Escalations hold stored request contexts. The mesh token is not enough: the orchestrator
    # has it and never reads these. Checked before readiness, as a route dependency.
    check_admin(request, split_keys(settings.admin_api_keys))


def build_router(limiter: Limiter, rate_limit: str) -> APIRouter:
    """The guardrails routes, each limited by `rate_limit` on `limiter`."""
    router = APIRouter(tags=["guardrails"])

    @router.post("/validate/input", response_model=InputVerdict)
    @limiter.limit(rate_limit)
    async def validate_input(request: Request, body: InputIn, deps: DepsDep) -> InputVerdict:
        """Block prompt injection in the text or its history (rules, then the classifier)."""
        settings = deps.settings
        check_text_length(body.text, settings.max_input_chars, "text")
        history = body.history_texts()
        _check_history(history, settings)
        return await deps.service.check_input(body, history)

    @router.post("/validate/output", response_model=OutputVerdict)
    @limiter.limit(rate_limit)
    async def validate_output(request: Request, body: OutputIn, deps: DepsDep) -> OutputVerdict:
        """Block canary leaks and target-phrase obedience, redact PII, block toxic text."""
        settings = deps.settings
        check_text_length(body.text, settings.max_output_chars, "text")
        if body.input is not None:
            check_text_length(body.input, settings.max_input_chars, "text")
        return await deps.service.check_output(body)

    @router.post("/escalate", response_model=EscalationOut)
    @limiter.limit(rate_limit)
    async def escalate(request: Request, body: EscalationIn, deps: DepsDep) -> EscalationOut:
        """Record an escalation for human review."""
        size = len(body.reason) + len(json.dumps(body.context))
        limit = deps.settings.max_escalation_chars
        if size > limit:
            raise ApiError(
                400,
                f"escalation is {size} characters; the limit is {limit}",
                param="context",
                code="context_too_large",
            )
        request_id = getattr(request.state, "request_id", None)
        return await deps.service.escalate(body.reason, body.context, request_id)

    @router.get("/escalations", dependencies=[Depends(_admin_only)])
    @limiter.limit(rate_limit)
    async def list_escalations(
        request: Request,
        deps: DepsDep,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,  # SQLite INTEGER range
    ) -> dict[str, Any]:
        """Escalations, newest first (stored request contexts: admin key only)."""
        return await deps.service.list_escalations(limit, offset)

    return router
