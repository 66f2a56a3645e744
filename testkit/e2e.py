"""The e2e mesh's keys and views (tests/e2e): shared by its fixtures and tests."""

from __future__ import annotations

import httpx

from scripts.run_local import Mesh
from testkit.helpers import normalize_text

API_KEY = "e2e-test-key"
ADMIN_KEY = "e2e-admin-key"
# Started beside the stage services: the UI, the dashboard and Prometheus.
VIEW_SERVICES = ["testing-ui", "monitoring-dashboard", "prometheus"]
QUESTION = "What is the capital of France?"


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate after the tests' text normalisation."""
    import jiwer

    return float(jiwer.cer(normalize_text(reference), normalize_text(hypothesis)))


def stt_text(mesh: Mesh, audio: bytes) -> str:
    """What the mesh's STT service hears in `audio`."""
    r = httpx.post(
        mesh.url("stt") + "/v1/audio/transcriptions",
        files={"file": ("a.wav", audio, "audio/wav")},
        data={"model": "whisper-1"},
        timeout=120,
    )
    r.raise_for_status()
    return str(r.json()["text"])
