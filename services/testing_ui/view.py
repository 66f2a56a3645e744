"""Turn orchestrator answers into what the page shows."""

from __future__ import annotations

from typing import Any

import numpy as np

from services.client import OrchestratorError, PipelineCatalog, StageRecord
from services.kit.audio import decode_audio
from services.kit.errors import ApiError

STAGE_COLUMNS = ["stage", "provider", "attempts", "latency_ms", "status", "fallback"]


def fallback_flag(record: StageRecord, catalog: PipelineCatalog, pipeline: str | None) -> str:
    """'yes' when a stage was served by a provider other than its first choice."""
    if record.tried and record.provider:
        # The orchestrator lists every provider it tried; retries of one provider are no fallback.
        return "yes" if set(record.tried) - {record.provider} else "no"
    first = catalog.first_provider(pipeline, record.stage)
    if first is None or not record.provider:
        # Without the pipeline's provider order the page cannot tell, and says so.
        return "unknown"
    return "no" if record.provider == first else "yes"


def stage_rows(
    stages: list[StageRecord], catalog: PipelineCatalog, pipeline: str | None
) -> list[list[Any]]:
    """One table row per stage record, in STAGE_COLUMNS order."""
    rows: list[list[Any]] = []
    for rec in stages:
        status = rec.status
        if rec.error:
            status = f"{status}: {rec.error}" if status else rec.error
        rows.append(
            [
                rec.stage,
                rec.provider or "—",
                "" if rec.attempts is None else rec.attempts,
                "" if rec.latency_ms is None else round(rec.latency_ms, 1),
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
