"""Fixtures: tiny FLAN-T5- and Llama-shaped models built on disk once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.models.tiny_llama import build_llama
from testkit.models.tiny_t5 import build_t5


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tokenizer + random tiny T5 saved with save_pretrained (the flan-t5 loading path)."""
    return build_t5(tmp_path_factory.mktemp("tiny-t5") / "flan-t5-tiny")


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tokenizer (ChatML template) + random tiny Llama saved with save_pretrained."""
    return build_llama(tmp_path_factory.mktemp("tiny-llama") / "llama-tiny")
