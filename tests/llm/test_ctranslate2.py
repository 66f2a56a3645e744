"""The LLM service on its CTranslate2 engine, over real HTTP, on tiny models converted here.

A tiny random Llama (causal, chat template, ctranslate2.Generator) and the tiny FLAN-T5-shaped
model (seq2seq, FLAN prompt, ctranslate2.Translator) are built with transformers and converted
with CTranslate2's own converter, exactly as a user converts a hub model.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import openai
import pytest

from services.llm.app import build_app
from services.llm.backends.ctranslate2_backend import CTranslate2ChatEngine, convert_model
from services.llm.engine import ChatMessage, GenerationParams
from services.llm.settings import Settings
from testkit.helpers import run_server
from testkit.llm import CHAT, USER, check_disconnect_stops_generation, wait_startup_failed

pytestmark = pytest.mark.slow

QUESTION = "What is the capital of France?"
MODELS = ("llama", "t5")


def _settings(model_dir: Path, **kw: object) -> Settings:
    base: dict[str, object] = {
        "model": str(model_dir),
        "max_new_tokens_limit": 2000,
        "max_input_tokens": 256,
        "default_max_tokens": 16,
    }
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def converted(tiny_llama_dir, tiny_t5_dir, tmp_path_factory) -> dict[str, Path]:
    """int8 CTranslate2 copies of both tiny models (tokenizer files copied beside model.bin)."""
    out = tmp_path_factory.mktemp("ct2")
    return {
        "llama": convert_model(tiny_llama_dir, out / "llama-tiny-ct2"),
        "t5": convert_model(tiny_t5_dir, out / "flan-t5-tiny-ct2"),
    }


@pytest.fixture(scope="module")
def servers(converted) -> dict[str, str]:
    """Both models served: the Llama picked by LLM_ENGINE=auto, the T5 named explicitly."""
    llama = build_app(_settings(converted["llama"], max_queue=4))
    t5 = build_app(_settings(converted["t5"], engine="ctranslate2"))
    with run_server(llama) as llama_url, run_server(t5) as t5_url:
        yield {"llama": llama_url, "t5": t5_url}


def _client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0)


def _expected_prompt_ids(name: str, hf_dir: Path) -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_dir)
    if name == "t5":  # FLAN prompt: a lone question as is, with </s>
        return list(tok(QUESTION)["input_ids"])
    text = tok.apply_chat_template(USER, add_generation_prompt=True, tokenize=False)
    return list(tok(text, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize(("name", "kind"), [("llama", "causal"), ("t5", "seq2seq")])
def test_ready_reports_ctranslate2_engine(servers, name, kind):
    ready = httpx.get(servers[name] + "/health/ready").json()
    assert ready["status"] == "ready" and ready["engine"] == "ctranslate2"
    assert ready["kind"] == kind
    model = {"llama": "llama-tiny-ct2", "t5": "flan-t5-tiny-ct2"}[name]
    assert ready["model"] == model
    assert [m["id"] for m in httpx.get(servers[name] + "/v1/models").json()["data"]] == [model]


@pytest.mark.parametrize("name", MODELS)
def test_plain_counts_real_tokens_and_max_tokens_is_length(
    servers, name, tiny_llama_dir, tiny_t5_dir
):
    r = _client(servers[name]).chat.completions.create(model="x", messages=USER, max_tokens=7)
    assert r.choices[0].message.content
    # The tiny models never emit their end token, so they run into max_tokens.
    assert r.choices[0].finish_reason == "length"
    hf_dir = tiny_llama_dir if name == "llama" else tiny_t5_dir
    prompt = _expected_prompt_ids(name, hf_dir)
    assert r.usage.prompt_tokens == len(prompt)
    assert r.usage.completion_tokens == 7
    assert r.usage.total_tokens == len(prompt) + 7


@pytest.mark.parametrize("name", MODELS)
def test_stream_is_per_token_and_matches_plain(servers, name):
    client = _client(servers[name])
    plain = client.chat.completions.create(model="m", messages=USER, max_tokens=12)
    chunks = list(
        client.chat.completions.create(
            model="m",
            messages=USER,
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0] for c in chunks if c.choices]
    pieces = [d.delta.content for d in deltas if d.delta.content]
    assert len(pieces) >= 6  # token by token, not one blob at the end
    assert "".join(pieces) == plain.choices[0].message.content
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12
    assert chunks[-1].usage.prompt_tokens == plain.usage.prompt_tokens


def test_stop_sequence_cuts_output_plain_and_streamed(servers):
    client = _client(servers["llama"])
    text = client.chat.completions.create(model="m", messages=USER, max_tokens=16)
    text = text.choices[0].message.content
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    cut = text[: text.index(stop)]
    assert cut, "the stop string should not be at the very start"
    r = client.chat.completions.create(model="m", messages=USER, max_tokens=16, stop=[stop, "@@"])
    assert r.choices[0].message.content == cut and r.choices[0].finish_reason == "stop"
    chunks = list(
        client.chat.completions.create(
            model="m", messages=USER, max_tokens=16, stop=stop, stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == cut
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("name", MODELS)
def test_seeded_sampling_is_reproducible(servers, name):
    client = _client(servers[name])

    def ask(seed: int | None, temperature: float = 1.0) -> str:
        r = client.chat.completions.create(
            model="m",
            messages=USER,
            max_tokens=12,
            temperature=temperature,
            top_p=0.95,
            seed=seed,
        )
        return r.choices[0].message.content or ""

    first = ask(7)
    # An unseeded sample in between must not disturb the next seeded one.
    ask(None)
    assert ask(7) == first
    # Sampling really samples: different seeds give different texts.
    assert len({ask(seed) for seed in (1, 2, 3, 4)}) > 1
    # Greedy is deterministic without a seed.
    assert ask(None, 0.0) == ask(None, 0.0)


@pytest.mark.parametrize("name", MODELS)
def test_greedy_output_equals_transformers_engine(name, tiny_llama_dir, tiny_t5_dir, tmp_path):
    # float32 conversion: same weights, so any difference would be in prompt or decoding code.
    hf_dir = tiny_llama_dir if name == "llama" else tiny_t5_dir
    ct2_dir = convert_model(hf_dir, tmp_path / "f32", quantization="float32")
    replies = []
    for settings in (
        _settings(hf_dir, engine="transformers"),
        _settings(ct2_dir, ct2_compute_type="float32"),
    ):
        with run_server(build_app(settings)) as url:
            assert httpx.get(url + "/health/ready").json()["engine"] == settings.engine.replace(
                "auto", "ctranslate2"
            )
            messages = [{"role": "system", "content": "Be brief."}, *USER]
            r = _client(url).chat.completions.create(model="m", messages=messages, max_tokens=20)
            replies.append((r.choices[0].message.content, r.usage.prompt_tokens))
    assert replies[0] == replies[1]


def test_disconnect_mid_stream_stops_generation(servers):
    check_disconnect_stops_generation(servers["llama"])


def test_stop_request_ends_decoding_inside_ctranslate2(converted):
    # Breaking out of generate_tokens must stop CTranslate2's own decoding loop, not just stop
    # reading it: generate() returns only once that loop has ended, so a stop after 5 tokens
    # must take a small fraction of the full 2000-token run.
    engine = CTranslate2ChatEngine.load(str(converted["llama"]))
    prompt = engine.prepare([ChatMessage("user", QUESTION)], 256)
    params = GenerationParams(max_new_tokens=2000)
    started = time.perf_counter()
    full = engine.generate(prompt, params, lambda _: None, lambda: False)
    full_s = time.perf_counter() - started
    calls = 0

    def stop_after_five() -> bool:
        nonlocal calls
        calls += 1
        return calls > 5

    started = time.perf_counter()
    cut = engine.generate(prompt, params, lambda _: None, stop_after_five)
    cut_s = time.perf_counter() - started
    assert full.completion_tokens == 2000 and not full.cancelled
    assert cut.completion_tokens == 6 and cut.cancelled and not cut.hit_eos
    assert cut_s < full_s / 10, (cut_s, full_s)


def test_model_that_is_not_ct2_reports_why(tmp_path, tiny_t5_dir):
    # LLM_ENGINE=ctranslate2 on a transformers directory: not ready, with the reason.
    app = build_app(Settings(model=str(tiny_t5_dir), engine="ctranslate2"))
    with run_server(app, ready_path="/health/live") as url:
        ready = wait_startup_failed(url)
        assert ready.status_code == 503 and ready.json()["engine"] == "ctranslate2"
        assert "not a CTranslate2 model directory" in ready.json()["reason"]
        r = httpx.post(url + CHAT, json={"messages": USER})
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"


def test_converted_model_without_tokenizer_reports_why(tmp_path, converted):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("model.bin", "config.json", "vocabulary.json"):
        (bare / name).symlink_to(converted["llama"] / name)
    with run_server(build_app(Settings(model=str(bare))), ready_path="/health/live") as url:
        ready = wait_startup_failed(url)
        assert ready.json()["engine"] == "ctranslate2"  # auto: a model.bin is there
        assert "no tokenizer files" in ready.json()["reason"]
