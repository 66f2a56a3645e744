"""Real answers from the PyPI-shipped SmolLM2: the GGUF on transformers, its int8 CTranslate2
conversion (scripts/prepare_models.py) on ctranslate2, both through the chat-template path."""

from __future__ import annotations

import httpx
import openai
import pytest

from services.llm.app import build_app
from services.llm.settings import Settings
from testkit.helpers import SMOLLM2_CT2, SMOLLM2_GGUF, run_server

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


@pytest.fixture(scope="module")
def ct2_base():
    if not (SMOLLM2_CT2 / "model.bin").exists():
        pytest.fail(f"{SMOLLM2_CT2} is missing: run scripts/prepare_models.py")
    # LLM_ENGINE=auto (the default) must pick ctranslate2 for this directory.
    settings = Settings(model=str(SMOLLM2_CT2), max_input_tokens=1024)
    with run_server(build_app(settings), timeout=300) as url:
        yield url


def _ask(base: str, stream: bool = False) -> tuple[str, str | None, object]:
    client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0)
    if not stream:
        r = client.chat.completions.create(model="smollm2", messages=QUESTION, max_tokens=40)
        return r.choices[0].message.content or "", r.choices[0].finish_reason, r.usage
    chunks = list(
        client.chat.completions.create(
            model="smollm2",
            messages=QUESTION,
            max_tokens=40,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    return text, finish[-1], chunks[-1].usage


def test_ct2_smollm2_ready_on_ctranslate2(ct2_base):
    ready = httpx.get(ct2_base + "/health/ready").json()
    assert ready["engine"] == "ctranslate2" and ready["kind"] == "causal"
    assert ready["model"] == "smollm2-ct2"


def test_ct2_smollm2_answers_paris_as_transformers_does(base, ct2_base):
    answer, finish, usage = _ask(ct2_base)
    assert "Paris" in answer and "<|im_end|>" not in answer
    assert finish == "stop"  # it emitted <|im_end|> by itself
    # Greedy int8 CTranslate2 gives the very text the fp32 transformers engine gives here (it
    # drifts apart on long answers: int8 rounding flips a near-tie after a few dozen tokens).
    reference, ref_finish, ref_usage = _ask(base)
    assert answer == reference and finish == ref_finish
    assert usage.prompt_tokens == ref_usage.prompt_tokens
    assert usage.completion_tokens == ref_usage.completion_tokens
    streamed, stream_finish, stream_usage = _ask(ct2_base, stream=True)
    assert (streamed, stream_finish) == (answer, "stop")
    assert stream_usage.completion_tokens == usage.completion_tokens
