"""The `llm` stage: the guarded conversation, asked of each provider in turn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.orchestrator.config import EffectiveStage, ProviderConfig
from services.orchestrator.conversation import Answer, ask_langchain, build_messages, converse
from services.orchestrator.run import Run, stage_options
from services.orchestrator.stages import ChatReply, TokenStream, chat_stream
from services.orchestrator.tools import schemas as tool_schemas


@dataclass(slots=True)  # one per provider call: cheap to build (no frozen __setattr__)
class ChatProvider:
    """One LLM provider as a run asks it: the client, the options and the tools it is offered.

    The client is the config's LangChain model for this (pipeline, provider) when
    `ORCH_LLM_CLIENT=langchain`, else the plain chat-completions POST.
    """

    run: Run
    prov: ProviderConfig
    model: Any | None  # a bound ChatOpenAI (runtime.Runtime.llm), or None
    options: dict[str, Any]
    offered: tuple[str, ...]
    timeout_s: float

    @classmethod
    def of(
        cls,
        run: Run,
        stage: EffectiveStage,
        name: str,
        prov: ProviderConfig,
        timeout_s: float,
        max_tokens: int | None = None,
    ) -> ChatProvider:
        """Provider `name` of `stage` for this run (`max_tokens`: a cap the caller adds)."""
        options = stage_options(prov, stage)
        if max_tokens is not None:
            options["max_tokens"] = min(int(options.get("max_tokens") or max_tokens), max_tokens)
        # Tools go only to providers that declare they support them.
        offered = stage.tools if prov.supports_tools else ()
        model = run.runtime.llm.get((run.pipe.name, name))
        return cls(run, prov, model, options, offered, timeout_s)

    async def ask(self, messages: list[dict[str, Any]], allow_tools: bool) -> ChatReply:
        """One whole reply; `allow_tools` False asks for text (`tool_choice: none`)."""
        choice = "auto" if allow_tools else "none"
        if self.model is not None:
            return await ask_langchain(self.model, messages, choice if self.offered else None)
        tools = tool_schemas(self.offered) if self.offered else None
        client = self.run.kit.client
        return await client.chat(self.prov, messages, self.options, self.timeout_s, tools, choice)

    async def answer(self, messages: list[dict[str, Any]]) -> Answer:
        """The final text answer, running the tools the model calls on the way."""
        kit = self.run.kit
        return await converse(self.ask, messages, self.offered, kit.max_tool_rounds, kit.count_tool)

    async def stream(self, messages: list[dict[str, Any]]) -> TokenStream | Answer:
        """The reply as a token stream past its first token, or whole when it cannot stream.

        Tool rounds and the LangChain client need whole replies.
        """
        if self.offered or self.model is not None:
            return await self.answer(messages)
        client = self.run.kit.client
        return await chat_stream(client, self.prov, messages, self.options, self.timeout_s)


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

        async def call(name: str, prov: ProviderConfig, timeout_s: float) -> Answer:
            return await ChatProvider.of(run, stage, name, prov, timeout_s).answer(messages)

        answer = await run.execute(stage, call)
        if answer is not None:
            result.response, result.usage = answer.text, answer.usage
            result.records[-1].tools_called = answer.tools_called
