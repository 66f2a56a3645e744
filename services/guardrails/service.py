"""The layer between routes and classifiers: input and output checks, escalations, metrics."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from services.guardrails.engine import Classifiers
from services.guardrails.escalations import EscalationStore
from services.guardrails.injection import InjectionRules
from services.guardrails.input_check import decode_all, scan_rules
from services.guardrails.metrics import GuardMetrics
from services.guardrails.normalize import strip_invisible
from services.guardrails.output_checks import canary_leaked, obeyed
from services.guardrails.pii import redact
from services.guardrails.schemas import (
    EscalationOut,
    InputIn,
    InputVerdict,
    OutputIn,
    OutputVerdict,
    RedactionOut,
)
from services.guardrails.settings import Settings
from services.kit.concurrency import WorkLimiter


def _request_checks(body: OutputIn) -> str | None:
    """'canary_leak' or 'target_phrase' when the reply does what an attack wanted, else None."""
    if body.canary and canary_leaked(body.text, body.canary):
        return "canary_leak"
    if body.input and obeyed(body.text, body.input):
        return "target_phrase"
    return None


@dataclass(frozen=True)
class Guard:
    """Runs the checks on texts whose size the routes have already bounded.

    CPU work (decoding, rules, PII) runs in worker threads; classifier calls take a slot of
    `work`, one batch per request.
    """

    settings: Settings
    classifiers: Classifiers
    rules: InjectionRules
    work: WorkLimiter
    metrics: GuardMetrics
    escalations: EscalationStore

    async def check_input(self, body: InputIn, history: list[str]) -> InputVerdict:
        """Block prompt injection in the text or its history (rules, then the classifiers)."""
        metrics = self.metrics
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
        finding = await asyncio.to_thread(scan_rules, self.rules, scanned, decoded)
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
        for detector in self.classifiers.injection:
            if not texts:
                break
            classifier, threshold = detector.classifier, detector.threshold
            started = time.perf_counter()
            # One batch for every text: one queue slot and one forward pass per request.
            scores = await self.work.run(classifier.scores, texts)
            metrics.latency.labels("injection_classifier").observe(time.perf_counter() - started)
            best = max(range(len(scores)), key=scores.__getitem__)
            if scores[best] >= threshold:
                metrics.blocks.labels("injection_classifier").inc()
                where = f" in text decoded from {encodings[best]}" if encodings[best] else ""
                return InputVerdict(
                    safe=False,
                    reason="prompt_injection:classifier",
                    detail=f"{classifier.name} score {scores[best]:.2f} >= {threshold:.2f}" + where,
                    sanitized=sanitized,
                    history_checked=checked,
                )
        return InputVerdict(safe=True, reason=None, sanitized=sanitized, history_checked=checked)

    async def check_output(self, body: OutputIn) -> OutputVerdict:
        """Block canary leaks and target-phrase obedience, redact PII, block toxic text."""
        settings, metrics = self.settings, self.metrics
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
        classifier = self.classifiers.toxicity
        if classifier is not None and filtered.strip():
            started = time.perf_counter()
            toxicity = (await self.work.run(classifier.scores, [filtered]))[0]
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

    async def escalate(
        self, reason: str, context: dict[str, Any] | str | None, request_id: str | None
    ) -> EscalationOut:
        """Record an escalation for human review."""
        row = await asyncio.to_thread(self.escalations.add, reason, context, request_id)
        self.metrics.escalations.inc()
        return EscalationOut(
            escalated=True,
            ticket_id=row["ticket_id"],
            message=f"Escalation recorded as {row['ticket_id']}; a person will review it.",
        )

    async def list_escalations(self, limit: int, offset: int) -> dict[str, Any]:
        """Escalations, newest first, in OpenAI's list shape plus the total."""
        items, total = await asyncio.to_thread(self.escalations.list, limit, offset)
        return {"object": "list", "data": items, "total": total}
