"""The guard stages: `guard_input` before the LLM, `guard_output` on its reply."""

from __future__ import annotations

from typing import Any

from services.orchestrator.config import EffectiveStage, ProviderConfig
from services.orchestrator.run import Run


async def _verdict(
    run: Run,
    stage: EffectiveStage,
    direction: str,
    text: str,
    history: tuple[tuple[str, str], ...] = (),
    request: dict[str, str] | None = None,
) -> dict[str, Any] | None:
    """The guardrails' verdict; None when an optional (fail-open) guard was skipped."""

    async def call(_: str, prov: ProviderConfig, timeout_s: float) -> dict[str, Any]:
        return await run.kit.client.validate(
            prov,
            direction,
            text,
            timeout_s,
            history=history,
            end_user=run.inp.identity,
            request=request,
        )

    return await run.execute(stage, call)


def _refuse(run: Run, verdict: dict[str, Any], default_reason: str) -> None:
    result = run.result
    result.blocked = True
    result.block_reason = str(verdict.get("reason") or default_reason)
    result.response = run.kit.refusal


class GuardInput:
    """`guard_input`: unsafe → the refusal is the reply and the LLM is skipped; else sanitized."""

    def skip(self, run: Run) -> str | None:
        """The input guard always runs."""
        return None

    async def handle(self, run: Run, stage: EffectiveStage) -> None:
        """Check the text with every earlier client text (one call)."""
        text = run.text or ""
        run.text = text
        verdict = await _verdict(run, stage, "input", text, run.inp.context)
        if verdict is None:
            return  # guardrails down and fail-open (or optional): unguarded
        if not verdict["safe"]:
            _refuse(run, verdict, "input blocked")
            return
        sanitized = verdict.get("sanitized")
        if isinstance(sanitized, str) and sanitized.strip():
            run.text = sanitized


class GuardOutput:
    """`guard_output`: unsafe (or the prompt's canary leaked) → the refusal; else filtered."""

    def skip(self, run: Run) -> str | None:
        """A blocked input has no reply to check."""
        return "input blocked" if run.result.blocked else None

    async def handle(self, run: Run, stage: EffectiveStage) -> None:
        """Check the reply, with what the user asked (a quoted "just say X") and the canary."""
        result = run.result
        request = {"canary": result.canary}
        asked = run.inp.text if run.inp.text is not None else result.transcript
        if asked:
            request["input"] = asked
        verdict = await _verdict(run, stage, "output", result.response or "", request=request)
        if verdict is None:
            return
        if not verdict["safe"]:
            _refuse(run, verdict, "output blocked")
        elif isinstance(verdict.get("filtered"), str):
            result.response = verdict["filtered"]
