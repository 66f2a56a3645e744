"""HTTP routes; built per app because slowapi's decorator needs that app's limiter."""

# No `from __future__ import annotations` here: FastAPI reads these signatures through
# slowapi's wrapper, whose module globals cannot resolve string annotations.
import asyncio
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from slowapi import Limiter

from services.guardrails.engine import TextClassifier
from services.guardrails.escalations import EscalationStore
from services.guardrails.injection import InjectionRules
from services.guardrails.input_check import decode_all, scan_rules
from services.guardrails.metrics import GuardMetrics
from services.guardrails.normalize import strip_invisible
from services.guardrails.output_checks import canary_leaked, obeyed
from services.guardrails.pii import redact
from services.guardrails.schemas import (
    EscalationIn,
    EscalationOut,
    InputIn,
    InputVerdict,
    OutputIn,
    OutputVerdict,
    RedactionOut,
)
from services.guardrails.settings import Settings
from services.kit import ApiError, ServiceState
from services.kit.app import get_state
from services.kit.auth import check_admin, split_keys
from services.kit.concurrency import WorkLimiter
from services.kit.limits import check_text_length


def _ready_state(request: Request) -> tuple[ServiceState, Settings]:
    state = get_state(request)
    state.require_ready()
    settings = state.settings
    assert isinstance(settings, Settings)
    return state, settings


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


def _model(state: ServiceState, settings: Settings) -> tuple[TextClassifier, float] | None:
    model: TextClassifier | None = state.resources.get("injection")
    return (model, settings.injection_threshold) if model is not None else None


def _request_checks(body: OutputIn) -> str | None:
    """'canary_leak' or 'target_phrase' when the reply does what an attack wanted, else None."""
    if body.canary and canary_leaked(body.text, body.canary):
        return "canary_leak"
    if body.input and obeyed(body.text, body.input):
        return "target_phrase"
    return None


def build_router(limiter: Limiter, rate_limit: str) -> APIRouter:
    """The guardrails routes, each limited by `rate_limit` on `limiter`."""
    router = APIRouter(tags=["guardrails"])

    @router.post("/validate/input", response_model=InputVerdict)
    @limiter.limit(rate_limit)
    async def validate_input(request: Request, body: InputIn) -> InputVerdict:
        """Block prompt injection in the text or its history (rules, then the classifier)."""
        state, settings = _ready_state(request)
        check_text_length(body.text, settings.max_input_chars, "text")
        history = body.history_texts()
        _check_history(history, settings)
        metrics: GuardMetrics = state.resources["metrics"]
        rules: InjectionRules = state.resources["rules"]
        sanitized = strip_invisible(body.text)
        checked = len(history)
        # The whole conversation as one text, one message per line: each message is checked
        # and so is an injection split across messages ("Ignore all previous" / "instructions");
        # then the user's own turns alone, in case replies were put between the pieces.
        scanned = body.text
        if history:
            users = body.user_texts()
            scanned = "\n".join([*history, body.text])
            if len(users) >= 2 and len(users) - 1 < len(history):
                scanned += "\n\n" + "\n".join(users)
        started = time.perf_counter()
        # Rules over the text, then over what hides in it (Base64, hex, ROT13, tag characters):
        # up to ~30 ms on a 4,000-char text, so off the event loop; decoding reads the raw
        # texts because tag characters are invisible format characters `sanitized` drops.
        decoded = await asyncio.to_thread(decode_all, [body.text, *history])
        finding = await asyncio.to_thread(scan_rules, rules, scanned, decoded)
        metrics.latency.labels("input_rules").observe(time.perf_counter() - started)
        if finding is not None:
            metrics.blocks.labels("prompt_injection").inc()
            return InputVerdict(
                safe=False,
                reason=finding.reason,
                detail=finding.detail,
                sanitized=sanitized,
                history_checked=checked,
            )
        texts = [t for t in (sanitized, *map(strip_invisible, history)) if t.strip()]
        texts += [d for _, d in decoded]
        encodings = [None] * (len(texts) - len(decoded)) + [e for e, _ in decoded]
        classifiers = [c for c in (state.resources.get("ngram"), _model(state, settings)) if c]
        for classifier, threshold in classifiers:
            if not texts:
                break
            work: WorkLimiter = state.resources["work"]
            started = time.perf_counter()
            # One batch for every text: one queue slot and one forward pass per request.
            scores = await work.run(classifier.scores, texts)
            metrics.latency.labels("injection_classifier").observe(time.perf_counter() - started)
            best = max(range(len(scores)), key=scores.__getitem__)
            if scores[best] >= threshold:
                metrics.blocks.labels("injection_classifier").inc()
                where = f" in text decoded from {encodings[best]}" if encodings[best] else ""
                return InputVerdict(
                    safe=False,
                    reason="prompt_injection:classifier",
                    detail=f"{classifier.engine} score {scores[best]:.2f} >= {threshold:.2f}"
                    + where,
                    sanitized=sanitized,
                    history_checked=checked,
                )
        return InputVerdict(safe=True, reason=None, sanitized=sanitized, history_checked=checked)

    @router.post("/validate/output", response_model=OutputVerdict)
    @limiter.limit(rate_limit)
    async def validate_output(request: Request, body: OutputIn) -> OutputVerdict:
        """Block canary leaks and target-phrase obedience, redact PII, block toxic text."""
        state, settings = _ready_state(request)
        check_text_length(body.text, settings.max_output_chars, "text")
        if body.input is not None:
            check_text_length(body.input, settings.max_input_chars, "text")
        metrics: GuardMetrics = state.resources["metrics"]
        refused = _request_checks(body)
        if refused is not None:
            metrics.blocks.labels(refused).inc()
            return OutputVerdict(
                safe=False,
                reason=refused,
                filtered=settings.blocked_output_message,
                redactions=[],
                toxicity=None,
            )
        started = time.perf_counter()
        filtered, found = await asyncio.to_thread(redact, strip_invisible(body.text))
        metrics.latency.labels("pii").observe(time.perf_counter() - started)
        for item in found:
            metrics.redactions.labels(item.type).inc(item.count)
        redactions = [RedactionOut(type=r.type, count=r.count) for r in found]
        reason = "pii_redacted" if found else None
        toxicity: float | None = None
        classifier: TextClassifier | None = state.resources.get("toxicity")
        if classifier is not None and filtered.strip():
            work: WorkLimiter = state.resources["work"]
            started = time.perf_counter()
            toxicity = (await work.run(classifier.scores, [filtered]))[0]
            metrics.latency.labels("toxicity").observe(time.perf_counter() - started)
            if toxicity >= settings.toxicity_threshold:
                metrics.blocks.labels("toxicity").inc()
                return OutputVerdict(
                    safe=False,
                    reason="toxicity",
                    filtered=settings.blocked_output_message,
                    redactions=redactions,
                    toxicity=toxicity,
                )
        return OutputVerdict(
            safe=True, reason=reason, filtered=filtered, redactions=redactions, toxicity=toxicity
        )

    @router.post("/escalate", response_model=EscalationOut)
    @limiter.limit(rate_limit)
    async def escalate(request: Request, body: EscalationIn) -> EscalationOut:
        """Record an escalation for human review."""
        state, settings = _ready_state(request)
        size = len(body.reason) + len(json.dumps(body.context))
        if size > settings.max_escalation_chars:
            raise ApiError(
                400,
                f"escalation is {size} characters; the limit is {settings.max_escalation_chars}",
                param="context",
                code="context_too_large",
            )
        store: EscalationStore = state.resources["escalations"]
        request_id = getattr(request.state, "request_id", None)
        row = await asyncio.to_thread(store.add, body.reason, body.context, request_id)
        state.resources["metrics"].escalations.inc()
        return EscalationOut(
            escalated=True,
            ticket_id=row["ticket_id"],
            message=f"Escalation recorded as {row['ticket_id']}; a person will review it.",
        )

    @router.get("/escalations")
    @limiter.limit(rate_limit)
    async def list_escalations(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,  # SQLite INTEGER range
    ) -> dict[str, Any]:
        """Escalations, newest first (stored request contexts: admin key only)."""
        # The mesh token is not enough: the orchestrator has it and never reads these.
        check_admin(request, split_keys(get_state(request).settings.admin_api_keys))
        state, _ = _ready_state(request)
        store: EscalationStore = state.resources["escalations"]
        items, total = await asyncio.to_thread(store.list, limit, offset)
        return {"object": "list", "data": items, "total": total}

    return router
