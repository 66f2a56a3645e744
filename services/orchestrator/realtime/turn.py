"""One realtime turn through the pipeline's stages, streamed: the same handlers as /v1/voice.

Transcription (denoise + STT), the input guard, the output guard and TTS run through the
stage table's handlers (`handlers.HANDLERS`), so providers, fallbacks, circuit breakers,
optional stages and stage metrics are those of `/v1/voice`. Only the LLM call differs: it is
streamed (`LlmClient.chat_stream`, either client) so sentences can be spoken while the model
still writes; a provider that fails before its first token falls over to the next one like any
stage call.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from services.kit import ApiError
from services.kit.audio import decode_audio, encode_wav
from services.kit.wyoming_media import clean_text
from services.orchestrator.backends.llm import LlmCall, ReplyStream, stream_or_answer
from services.orchestrator.config import EffectiveStage, ProviderConfig
from services.orchestrator.conversation import Answer, build_messages
from services.orchestrator.executor import StageRecord, classify
from services.orchestrator.handlers import HANDLERS
from services.orchestrator.handlers.audio import denoise_gate
from services.orchestrator.history import Turn
from services.orchestrator.pipeline import Runner, stage_errors
from services.orchestrator.realtime.protocol import PCM_RATE
from services.orchestrator.run import Plan, Run, RunInput

# A sentence ends at . ! ? … (optionally closed by a quote or bracket) followed by a space;
# only the space is consumed, so the closing quote stays with its sentence.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s+")
# A first sentence longer than this is cut at a comma: the first audio should come early.
_EARLY_CUT = 60
# ... and one with no comma this long at its last word boundary (about 15 words, ~5 s of
# speech: the rest of the sentence is written while they are spoken).
_WORD_CUT = 90


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
            elif len(self.pending) > _WORD_CUT and (cut := self.pending.rfind(" ")) > 20:
                out, self.pending = [self.pending[:cut].strip()], self.pending[cut + 1 :]
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

    def __init__(self, runner: Runner, plan: Plan, base: RunInput) -> None:
        self.runner = runner
        self.plan = plan
        self.base = base  # session id, scope and identity of the session
        self.records: list[StageRecord] = []

    def _run(
        self,
        *,
        audio: bytes | None = None,
        text: str | None = None,
        context: tuple[tuple[str, str], ...] = (),
        voice: str | None = None,
    ) -> Run:
        """A run of this turn's plan; every stage call of the turn lands in one record list."""
        result = self.plan.result(self.base.session_id)
        result.records = self.records
        inp = dataclasses.replace(
            self.base, audio=audio, text=text, context=context, voice=voice, filename="input.wav"
        )
        return Run(self.runner.kit, self.plan, inp, result, audio, text)

    def _stage(self, name: str) -> EffectiveStage | None:
        return next((s for s in self.plan.pipe.stages if s.stage == name), None)

    async def transcribe(
        self,
        samples: np.ndarray,
        denoised: np.ndarray | None = None,
        streamed: StageRecord | None = None,
    ) -> str:
        """Denoise (when the pipeline has it; optional ones may be skipped) and transcribe.

        `denoised`: the utterance already denoised by the session's stream; the denoise stage
        is then not called, its record is `streamed` (done by the stream) and STT gets it.
        ApiError as /v1/voice raises it (422 no_speech, 502/504 stage failures).
        """
        denoise = self._stage("denoise")
        # A reloaded config may have dropped the stage since the stream opened: then raw audio.
        use_stream = denoised is not None and denoise is not None
        skip: str | None = None
        if use_stream:
            # The same SNR gate as the denoise stage's (which the POST path goes through).
            floor = self.runner.kit.denoise_min_snr_db
            _, skip = await denoise_gate(floor, encode_wav(samples, PCM_RATE))
        audio = denoised if use_stream and skip is None and denoised is not None else samples
        run = self._run(audio=encode_wav(audio, PCM_RATE))
        stt = self._stage("stt")
        if stt is None:
            raise ApiError(
                400, f"pipeline '{run.pipe.name}' has no stt stage", code="pipeline_takes_text"
            )
        with stage_errors():
            if skip is not None:
                self.records.append(StageRecord("denoise", status="skipped", note=skip))
            elif use_stream:
                record = streamed or StageRecord("denoise", note="streamed")
                self.records.append(record)
                # Counted with the stage calls: outcome `streamed`, the time the turn waited.
                self.runner.kit.metrics.record_attempt(
                    run.pipe.name,
                    "denoise",
                    record.provider or "stream",
                    "streamed",
                    record.latency_ms / 1000,
                )
            elif denoise is not None:
                await HANDLERS["denoise"].handle(run, denoise)
            await HANDLERS["stt"].handle(run, stt)
        return run.text or ""

    async def guard_input(self, text: str, context: tuple[tuple[str, str], ...]) -> Guarded:
        """The input guard's verdict on the user's turn (the refusal text when blocked)."""
        stage = self._stage("guard_input")
        if stage is None:
            return Guarded(text, False)
        run = self._run(text=text, context=context)
        with stage_errors():
            await HANDLERS["guard_input"].handle(run, stage)
        if run.result.blocked:
            return Guarded(self.runner.kit.refusal, True, run.result.block_reason)
        return Guarded(run.text or "", False)

    async def guard_output(self, sentence: str) -> Guarded:
        """One sentence through the output guard: filtered text, or the refusal when unsafe."""
        stage = self._stage("guard_output")
        if stage is None:
            return Guarded(sentence, False)
        run = self._run()
        run.result.response = sentence
        with stage_errors():
            await HANDLERS["guard_output"].handle(run, stage)
        result = run.result
        return Guarded(result.response or "", result.blocked, result.block_reason)

    async def speak(self, text: str, voice: str | None) -> np.ndarray | None:
        """TTS of one sentence as 24 kHz float samples (None: an optional tts stage skipped)."""
        stage = self._stage("tts")
        if stage is None:
            raise ApiError(400, f"pipeline '{self.plan.pipe.name}' has no tts stage", code="no_tts")
        run = self._run(text=text, voice=voice)
        with stage_errors():
            await HANDLERS["tts"].handle(run, stage)
        if run.result.audio is None:
            return None
        try:
            return decode_audio(run.result.audio, PCM_RATE).samples
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
        """The LLM's reply in pieces; the stream is closed (generation stopped) on exit.

        The provider's verdict waits for the stream's end (`executor.StreamVerdict`): a reply
        that breaks mid-way counts against its breaker, one the client cuts counts for nothing.
        """
        stage = self._stage("llm")
        if stage is None:
            raise ApiError(400, f"pipeline '{self.plan.pipe.name}' has no llm stage", code="no_llm")
        messages = build_messages(instructions, history, text)
        run = self._run()

        async def call(name: str, prov: ProviderConfig, timeout_s: float) -> ReplyStream | Answer:
            request = LlmCall.for_stage(stage, prov, timeout_s, max_tokens)
            # Tool rounds need whole replies: the final answer is then split into sentences
            # like a stream that arrived at once.
            kit = run.kit
            return await stream_or_answer(
                kit.llm, request, messages, kit.max_tool_rounds, kit.count_tool
            )

        with stage_errors():
            answer = await run.execute(stage, call)
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
            # The stream has settled the failure itself (breaker, metrics, this turn's record).
            raise ApiError(
                504 if failure.kind == "timeout" else 502,
                f"stage 'llm' failed mid-reply: {failure.message}",
                param="llm",
                code="stage_timeout" if failure.kind == "timeout" else "stage_failed",
            ) from exc
        finally:
            await answer.aclose()
