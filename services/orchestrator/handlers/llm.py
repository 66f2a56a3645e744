"""The `llm` stage: the guarded conversation, asked of each provider in turn."""

from __future__ import annotations

from services.orchestrator.backends.llm import LlmCall, answer
from services.orchestrator.config import EffectiveStage, ProviderConfig
from services.orchestrator.conversation import Answer, build_messages
from services.orchestrator.run import Run


class Converse:
    """`llm`: system prompt + session history + the checked text → the reply."""

    def skip(self, run: Run) -> str | None:
        """A blocked input is answered with the refusal, not by the model."""
        return "input blocked" if run.result.blocked else None

    async def handle(self, run: Run, stage: EffectiveStage) -> None:
        """Ask the providers in order; keep the reply, its usage and the tools it called."""
        inp, result = run.inp, run.result
        history = (
            inp.history if inp.history is not None else await run.kit.store.load(inp.store_key)
        )
        system = run.runtime.loaded.file.system_prompt.text
        if run.pipe.has("guard_output"):
            system = f"<!-- {result.canary} -->\n{system}"  # the canary, as Rebuff places it
        messages = build_messages(system, history, run.text or "")

        async def call(_: str, prov: ProviderConfig, timeout_s: float) -> Answer:
            request = LlmCall.for_stage(stage, prov, timeout_s)
            kit = run.kit
            return await answer(kit.llm, request, messages, kit.max_tool_rounds, kit.count_tool)

        reply = await run.execute(stage, call)
        if reply is not None:
            result.response, result.usage = reply.text, reply.usage
            result.records[-1].tools_called = reply.tools_called
