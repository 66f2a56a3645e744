"""The `tts` stage: the reply (or, without an LLM, the text) as WAV audio."""

from __future__ import annotations

from services.orchestrator.config import EffectiveStage, ProviderConfig
from services.orchestrator.run import Run, stage_options


class Speak:
    """`tts`: runs only when the client asked for audio; the voice it chose wins."""

    def skip(self, run: Run) -> str | None:
        """Text clients that did not ask for audio get none."""
        return None if run.inp.want_audio else "audio not requested"

    async def handle(self, run: Run, stage: EffectiveStage) -> None:
        """OpenAI speech; keeps the WAV and the engine that made it (X-TTS-Engine)."""
        result = run.result
        say = result.response if result.response is not None else (run.text or "")
        voice = run.inp.voice

        async def call(_: str, prov: ProviderConfig, timeout_s: float) -> tuple[bytes, str | None]:
            options = stage_options(prov, stage)
            if voice:
                options["voice"] = voice
            return await run.kit.client.speak(prov, say, options, timeout_s)

        spoken = await run.execute(stage, call)
        if spoken is not None:
            result.audio, result.tts_engine = spoken
