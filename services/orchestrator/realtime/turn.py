"""One realtime turn through the pipeline's stages, streamed: the same Runner pieces as /v1/voice.

Transcription (denoise + STT), the input guard, the output guard and TTS run through the
Runner's own stage methods, so providers, fallbacks, circuit breakers, optional stages and
stage metrics are those of `/v1/voice`. Only the LLM call differs: it is streamed
(`LlmClient.chat_stream`, either client) so sentences can be spoken while the model still
writes; a provider that fails before its first token falls over to the next one like any
stage call.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from services.kit import ApiError
from services.kit.audio import decode_audio, encode_wav
from services.kit.wyoming_media import clean_text
from services.orchestrator.backends.llm import LlmCall, ReplyStream, stream_or_answer
from services.orchestrator.config import EffectivePipeline, EffectiveStage, ProviderConfig
from services.orchestrator.conversation import Answer, build_messages
from services.orchestrator.engine import Turn
from services.orchestrator.executor import StageRecord, classify
from services.orchestrator.pipeline import RunInput, Runner, RunResult, stage_errors
from services.orchestrator.realtime.protocol import PCM_RATE
from services.orchestrator.runtime import Runtime

# A sentence ends at . ! ? … (optionally closed by a quote or bracket) followed by a space.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]?\s+")
# A first sentence longer than this is cut at a comma: the first audio should come early.
_EARLY_CUT = 120


class SentenceSplitter:
    """LLM pieces in, whole sentences out (the unit of guarding and speaking)."""

    def __init__(self) -> None:
        self.pending = ""
        self.emitted = 0

    def add(self, piece: str) -> list[str]:
        """Add a piece; return the sentences it completed."""
        self.pending += clean_text(piece)
        parts = _SENTENCE_END.split(self.pending)
        self.pending = parts.pop()
        out = [p.strip() for p in parts if p.strip()]
        if not out and self.emitted == 0 and len(self.pending) > _EARLY_CUT:
            cut = self.pending.rfind(", ")
            if cut > 20:
                out, self.pending = [self.pending[: cut + 1].strip()], self.pending[cut + 2 :]
        self.emitted += len(out)
        return out

    def finish(self) -> str:
        """What is left once the stream ended."""
        rest, self.pending = self.pending.strip(), ""
        return rest


@dataclass
class Guarded:
    """A sentence after the output guard: what may be spoken, and whether it was refused."""

    text: str
    blocked: bool
    reason: str | None = None


class StreamingTurn:
    """The stages of one pipeline, driven piece by piece for a live session."""

    def __init__(
        self, runner: Runner, runtime: Runtime, pipe: EffectivePipeline, base: RunInput
    ) -> None:
        self.runner = runner
        self.runtime = runtime
        self.pipe = pipe
        self.base = base  # session id, scope and identity of the session
        self.records: list[StageRecord] = []

    def _result(self) -> RunResult:
        loaded = self.runtime.loaded
        result = RunResult(
            self.pipe.name,
            self.base.session_id,
            self.runtime.version,
            loaded.file.system_prompt.version,
        )
        result.records = self.records  # every stage call of the turn lands in one list
        return result

    def _stage(self, name: str) -> EffectiveStage | None:
        return next((s for s in self.pipe.stages if s.stage == name), None)

    async def transcribe(self, samples: np.ndarray) -> str:
        """Denoise (when the pipeline has it; optional ones may be skipped) and transcribe.

        ApiError as /v1/voice raises it (422 no_speech, 502/504 stage failures).
        """
        wav = encode_wav(samples, PCM_RATE)
        result = self._result()
        rt, pipe = self.runtime, self.pipe
        with stage_errors():
            den = self._stage("denoise")
            if den is not None:
                wav = await self.runner._denoise(rt, pipe, den, wav, result)
            stt = self._stage("stt")
            if stt is None:
                raise ApiError(
                    400, f"pipeline '{pipe.name}' has no stt stage", code="pipeline_takes_text"
                )
            return await self.runner._stt(rt, pipe, stt, wav, "input.wav", result)

    async def guard_input(self, text: str, context: tuple[tuple[str, str], ...]) -> Guarded:
        """The input guard's verdict on the user's turn (the refusal text when blocked)."""
        stage = self._stage("guard_input")
        if stage is None:
            return Guarded(text, False)
        inp = RunInput(**{**vars(self.base), "text": text, "context": context})
        result = self._result()
        with stage_errors():
            said = await self.runner._guard_input(self.runtime, self.pipe, stage, inp, text, result)
        if result.blocked:
            return Guarded(self.runner.refusal, True, result.block_reason)
        return Guarded(said, False)

    async def guard_output(self, sentence: str) -> Guarded:
        """One sentence through the output guard: filtered text, or the refusal when unsafe."""
        stage = self._stage("guard_output")
        if stage is None:
            return Guarded(sentence, False)
        result = self._result()
        result.response = sentence
        with stage_errors():
            await self.runner._guard_output(self.runtime, self.pipe, stage, self.base, result)
        return Guarded(result.response or "", result.blocked, result.block_reason)

    async def speak(self, text: str, voice: str | None) -> np.ndarray | None:
        """TTS of one sentence as 24 kHz float samples (None: an optional tts stage skipped)."""
        stage = self._stage("tts")
        if stage is None:
            raise ApiError(400, f"pipeline '{self.pipe.name}' has no tts stage", code="no_tts")
        result = self._result()
        with stage_errors():
            await self.runner._tts(self.runtime, self.pipe, stage, text, result, voice)
        if result.audio is None:
            return None
        try:
            return decode_audio(result.audio, PCM_RATE).samples
        except ApiError as exc:  # the provider's WAV is unreadable: its fault, not the client's
            raise ApiError(
                502, f"tts audio unreadable: {exc.message}", code="stage_failed"
            ) from exc

    async def reply(
        self,
        text: str,
        history: list[Turn],
        instructions: str,
        max_tokens: int | None,
    ) -> AsyncIterator[str]:
        """The LLM's reply in pieces; the stream is closed (generation stopped) on exit."""
        stage = self._stage("llm")
        if stage is None:
            raise ApiError(400, f"pipeline '{self.pipe.name}' has no llm stage", code="no_llm")
        messages = build_messages(instructions, history, text)
        result = self._result()

        async def call(name: str, prov: ProviderConfig, timeout_s: float) -> ReplyStream | Answer:
            request = LlmCall.for_stage(stage, prov, timeout_s, max_tokens)
            # Tool rounds need whole replies: the final answer is then split into sentences
            # like a stream that arrived at once.
            rounds, count = self.runner.max_tool_rounds, self.runner._count_tool
            return await stream_or_answer(self.runner.llm, request, messages, rounds, count)

        with stage_errors():
            answer = await self.runner._stage(self.runtime, self.pipe, stage, call, result)
        if answer is None:
            raise ApiError(502, "the llm stage produced no reply", code="stage_failed")
        if isinstance(answer, Answer):
            yield answer.text
            return
        try:
            async for piece in answer:
                yield piece
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            # Past the first token there is no falling over: the reply so far was spoken.
            raise ApiError(
                504 if failure.kind == "timeout" else 502,
                f"stage 'llm' failed mid-reply: {failure.message}",
                param="llm",
                code="stage_timeout" if failure.kind == "timeout" else "stage_failed",
            ) from exc
        finally:
            await answer.aclose()
