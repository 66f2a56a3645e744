"""Turn orchestrator answers into what the page shows."""

from __future__ import annotations

from typing import Any

import numpy as np

from services.kit.audio import decode_audio
from services.kit.errors import ApiError
from services.testing_ui.client import OrchestratorError, PipelineCatalog

STAGE_COLUMNS = ["stage", "provider", "attempts", "latency_ms", "status", "fallback"]


def fallback_flag(record: dict[str, Any], catalog: PipelineCatalog, pipeline: str | None) -> str:
    """'yes' when a stage was served by a provider other than its first choice."""
    explicit = record.get("fallback")
    if isinstance(explicit, bool):
        return "yes" if explicit else "no"
    provider = record.get("provider")
    tried = record.get("tried")
    if isinstance(tried, list) and provider:
        # The orchestrator lists every provider it tried; retries of one provider are no fallback.
        others = {t.get("provider") for t in tried if isinstance(t, dict)} - {provider}
        return "yes" if others else "no"
    first = catalog.first_provider(pipeline, str(record.get("stage", "")))
    if first is None or not provider:
        # Without the pipeline's provider order the page cannot tell, and says so.
        return "unknown"
    return "no" if provider == first else "yes"


def stage_rows(
    stages: list[dict[str, Any]], catalog: PipelineCatalog, pipeline: str | None
) -> list[list[Any]]:
    """One table row per stage record, in STAGE_COLUMNS order."""
    rows: list[list[Any]] = []
    for rec in stages:
        latency = rec.get("latency_ms")
        status = str(rec.get("status", ""))
        if rec.get("error"):
            status = f"{status}: {rec['error']}" if status else str(rec["error"])
        rows.append(
            [
                str(rec.get("stage", "")),
                str(rec.get("provider") or "—"),
                rec.get("attempts", ""),
                round(float(latency), 1) if isinstance(latency, int | float) else "",
                status,
                fallback_flag(rec, catalog, pipeline),
            ]
        )
    return rows


def wav_to_player(wav: bytes) -> tuple[int, np.ndarray]:
    """Decode reply audio to (rate, int16 samples) for the audio player."""
    try:
        audio = decode_audio(wav)
    except ApiError as exc:
        raise OrchestratorError(f"the reply audio could not be decoded: {exc.message}") from exc
    pcm = (np.clip(audio.samples, -1.0, 1.0) * 32767.0).astype(np.int16)
    return audio.sample_rate, pcm
