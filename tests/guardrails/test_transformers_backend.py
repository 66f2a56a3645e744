"""The transformers classifier's real loading path, on tiny BERT models the test saves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.guardrails.app import build_app
from testkit.guardrails import make_settings
from testkit.helpers import run_server
from testkit.models.tiny_classifier import TOXIC_BERT_LABELS, build_tiny_classifier

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three tiny models: always-toxic, never-toxic (toxic-bert labels) and an injection one."""
    root = tmp_path_factory.mktemp("tiny")
    # "insult" alone fires in the first model: the service must read every label, not only 0.
    return {
        "toxic": build_tiny_classifier(
            root / "toxic",
            TOXIC_BERT_LABELS,
            [-6, -6, -6, -6, 4, -6],
            "multi_label_classification",
        ),
        "clean": build_tiny_classifier(
            root / "clean", TOXIC_BERT_LABELS, [-4.0] * 6, "multi_label_classification"
        ),
        # Single-label softmax with a benign "SAFE" class that must not count as a hit.
        "injection": build_tiny_classifier(root / "inj", ["SAFE", "INJECTION"], [0.0, 5.0], None),
    }


@pytest.fixture(scope="module")
def toxic_server(models: dict[str, Path]) -> Iterator[str]:
    """A server whose toxicity model (loaded from disk) scores every text as an insult."""
    settings = make_settings(
        toxicity_backend="transformers",
        toxicity_model=str(models["toxic"]),
        injection_model=str(models["injection"]),
        injection_threshold=0.9,
    )
    with run_server(build_app(settings)) as url:
        yield url


def test_ready_reports_the_loaded_model(toxic_server: str, models: dict[str, Path]) -> None:
    body = httpx.get(toxic_server + "/health/ready").json()
    assert body["engine"] == "transformers" and body["model"] == str(models["toxic"])
    assert body["injection_model"] == str(models["injection"])


def test_multilabel_sigmoid_score_blocks(toxic_server: str) -> None:
    r = httpx.post(toxic_server + "/validate/output", json={"text": "Have a lovely day."})
    body = r.json()
    assert r.status_code == 200 and body["safe"] is False and body["reason"] == "toxicity"
    # sigmoid(4) from the "insult" label, not softmax over the six labels.
    assert body["toxicity"] == pytest.approx(0.9820, abs=1e-3)


def test_injection_classifier_softmax_blocks(toxic_server: str) -> None:
    r = httpx.post(toxic_server + "/validate/input", json={"text": "What is the capital of Peru?"})
    body = r.json()
    assert body == {
        "safe": False,
        "reason": "prompt_injection:classifier",
        "sanitized": "What is the capital of Peru?",
        "history_checked": 0,
        "detail": "transformers score 0.99 >= 0.90",
    }


def test_clean_model_passes_and_long_text_is_truncated(models: dict[str, Path]) -> None:
    settings = make_settings(
        toxicity_backend="transformers", toxicity_model=str(models["clean"]), toxicity_max_tokens=16
    )
    with run_server(build_app(settings)) as url:
        r = httpx.post(url + "/validate/output", json={"text": "word " * 2000})
        body = r.json()
        assert r.status_code == 200 and body["safe"] is True
        assert body["toxicity"] == pytest.approx(0.0180, abs=1e-3)  # sigmoid(-4)
