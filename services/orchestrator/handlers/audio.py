"""The audio stages: `denoise` (preprocessor) and `stt` (speech to text)."""

from __future__ import annotations

from services.kit import ApiError
from services.orchestrator.config import EffectiveStage, ProviderConfig
from services.orchestrator.run import Run, stage_options


class _AudioStage:
    def skip(self, run: Run) -> str | None:
        """Audio stages have nothing to do for a text request."""
        return "text input" if run.inp.audio is None else None


class Denoise(_AudioStage):
    """`denoise`: cleaned audio; an optional one that fails passes the raw audio on."""

    async def handle(self, run: Run, stage: EffectiveStage) -> None:
        """POST the audio to the preprocessor; keep its WAV for the next stage."""
        audio = run.wav()

        async def call(_: str, prov: ProviderConfig, timeout_s: float) -> bytes:
            return await run.kit.client.denoise(prov, audio, timeout_s)

        out = await run.execute(stage, call)
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
