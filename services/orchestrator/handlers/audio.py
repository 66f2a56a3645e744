"""The audio stages: `denoise` (preprocessor) and `stt` (speech to text)."""

from __future__ import annotations

import asyncio

from services.kit import ApiError
from services.orchestrator.config import EffectiveStage, ProviderConfig
from services.orchestrator.executor import StageRecord
from services.orchestrator.run import Run, stage_options


def estimate_snr(wav: bytes) -> float | None:
    """The clip's SNR estimate in dB (Silero speech vs non-speech windows), None when unknown."""
    from services.kit.audio import decode_audio
    from services.kit.snr import RATE, estimate_snr_db
    from services.kit.vad import SileroDetector

    return estimate_snr_db(decode_audio(wav, RATE).samples, SileroDetector())


async def denoise_gate(floor: float | None, wav: bytes) -> tuple[float | None, str | None]:
    """(SNR estimate, why the preprocessor is skipped — None: denoise) under the SNR floor."""
    if floor is None:
        return None, None
    # Silero over the whole clip is CPU work: off the event loop.
    snr = await asyncio.to_thread(estimate_snr, wav)
    if snr is None:
        return None, "no SNR estimate (no noise-only audio): raw audio to stt"
    if snr < floor:
        return snr, (
            f"estimated SNR {snr:.1f} dB, below ORCH_DENOISE_MIN_SNR_DB {floor:g}: raw audio to stt"
        )
    return snr, None


class _AudioStage:
    def skip(self, run: Run) -> str | None:
        """Audio stages have nothing to do for a text request."""
        return "text input" if run.inp.audio is None else None


class Denoise(_AudioStage):
    """`denoise`: cleaned audio; an optional one that fails passes the raw audio on.

    With ORCH_DENOISE_MIN_SNR_DB set, audio whose SNR cannot be estimated (babble) or is
    below it skips the preprocessor: Whisper hears raw babble better than DeepFilterNet3's
    output of it (docs/quality.md, the STT sweep).
    """

    async def handle(self, run: Run, stage: EffectiveStage) -> None:
        """POST the audio to the preprocessor; keep its WAV for the next stage."""
        audio = run.wav()
        snr, skip = await denoise_gate(run.kit.denoise_min_snr_db, audio)
        if skip is not None:
            run.result.records.append(StageRecord(stage.stage, status="skipped", note=skip))
            return

        async def call(_: str, prov: ProviderConfig, timeout_s: float) -> bytes:
            return await run.kit.client.denoise(prov, audio, timeout_s)

        out = await run.execute(stage, call)
        if snr is not None:
            run.result.records[-1].note = f"estimated SNR {snr:.1f} dB"
        if out is not None:
            run.audio = out


class Transcribe(_AudioStage):
    """`stt`: the transcript becomes the run's text; no speech at all is a 422."""

    async def handle(self, run: Run, stage: EffectiveStage) -> None:
        """OpenAI transcription of the (denoised) audio."""
        audio, filename = run.wav(), run.inp.filename

        async def call(_: str, prov: ProviderConfig, timeout_s: float) -> str:
            options = stage_options(prov, stage)
            return await run.kit.client.transcribe(prov, audio, filename, options, timeout_s)

        text = await run.execute(stage, call)
        run.result.transcript = text
        if not text or not text.strip():
            raise ApiError(
                422, "no speech was recognised in the audio", param="file", code="no_speech"
            )
        run.text = text
