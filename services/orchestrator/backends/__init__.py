"""What the orchestrator talks through: session history stores (memory, redis), LLM clients.

`open_llm_client` is the one place the llm stage's client is chosen.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from services.kit.http import make_client
from services.orchestrator.backends.llm import LlmClient
from services.orchestrator.backends.llm_http import HttpLlmClient
from services.orchestrator.backends.llm_langchain import LangChainLlmClient
from services.orchestrator.balancer import BalancedTransport, Balancer
from services.orchestrator.stages import StageClient


async def open_llm_client(
    kind: Literal["http", "langchain"],
    stages: StageClient,
    *,
    timeout_s: float,
    max_reply_bytes: int,
    balancer: Balancer | None,
) -> LlmClient:
    """The one place the llm stage's client is chosen (`ORCH_LLM_CLIENT`)."""
    if kind == "http":
        return HttpLlmClient(stages)
    # ChatOpenAI needs an httpx client, through the same balancer as the stage calls (their
    # replicas' in-flight counts add up) and with the same reply cap as the plain client.
    http = make_client(
        timeout_s,
        max_connections=200,
        max_response_bytes=max_reply_bytes,
        wrap=(lambda t: BalancedTransport(t, balancer)) if balancer else None,
    )
    try:
        # LangChain takes seconds to import (the client's first build): off the event loop.
        return await asyncio.to_thread(LangChainLlmClient, http)
    except BaseException:
        await http.aclose()
        raise
