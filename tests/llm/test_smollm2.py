"""A real answer from the PyPI-shipped SmolLM2 GGUF, served through the chat-template path."""

from __future__ import annotations

import httpx
import openai
import pytest

from services.llm.app import build_app
from services.llm.settings import Settings
from tests.helpers import SMOLLM2_GGUF, run_server

pytestmark = pytest.mark.slow

QUESTION = [
    {"role": "system", "content": "You are a helpful assistant. Answer in one sentence."},
    {"role": "user", "content": "What is the capital of France?"},
]


@pytest.fixture(scope="module")
def base():
    if not SMOLLM2_GGUF.exists():
        pytest.fail(f"{SMOLLM2_GGUF} is missing: run scripts/prepare_models.py")
    settings = Settings(model=str(SMOLLM2_GGUF), max_input_tokens=1024)
    with run_server(build_app(settings), timeout=300) as url:
        yield url


def test_smollm2_ready_as_causal_gguf(base):
    ready = httpx.get(base + "/health/ready").json()
    assert ready["kind"] == "causal" and ready["model"] == "SmolLM2-135M-Instruct.Q4_1"


def test_capital_of_france_plain_and_stream(base):
    client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0)
    r = client.chat.completions.create(model="smollm2", messages=QUESTION, max_tokens=40)
    answer = r.choices[0].message.content
    assert "Paris" in answer
    # It ends by itself (its <|im_end|> token), which is reported as "stop" and counted.
    assert r.choices[0].finish_reason == "stop"
    assert "<|im_end|>" not in answer
    assert 0 < r.usage.completion_tokens < 40 and r.usage.prompt_tokens > 10
    chunks = list(
        client.chat.completions.create(
            model="smollm2",
            messages=QUESTION,
            max_tokens=40,
            stream=True,
        )
    )
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert len(pieces) >= 3 and "".join(pieces) == answer
    assert chunks[-1].choices[0].finish_reason == "stop"
