"""Settings: env prefix, derived body limit, model ids."""

from __future__ import annotations

import pytest

from services.stt.settings import MULTIPART_OVERHEAD_BYTES, Settings


def test_env_prefix_and_derived_body_limit(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("STT_MODEL", "/models/whisper-small")
    monkeypatch.setenv("STT_MAX_UPLOAD_BYTES", "1000")
    monkeypatch.setenv("STT_BEAM_SIZE", "2")
    monkeypatch.setenv("PORT", "9100")
    s = Settings()
    assert s.model == "/models/whisper-small" and s.beam_size == 2 and s.port == 9100
    assert s.max_body_bytes == 1000 + MULTIPART_OVERHEAD_BYTES
    assert s.model_id() == "whisper-small"
    assert Settings().port == 9100
    monkeypatch.delenv("PORT")
    assert Settings().port == 9000


def test_model_ids():
    assert Settings(model="base").model_id() == "base"
    hub_id = "Systran/faster-whisper-small"
    assert Settings(model=hub_id).model_id() == hub_id
    assert Settings(model=".models/whisper-base/").model_id() == "whisper-base"
    assert Settings(model="base", served_model_name="whisper-1").model_id() == "whisper-1"


def test_bad_values_rejected(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("STT_MAX_CONCURRENCY", "0")
    with pytest.raises(ValueError):
        Settings()
