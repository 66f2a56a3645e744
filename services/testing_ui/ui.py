"""The Gradio page: ask by voice, upload or text; see transcript, reply, audio and stages."""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from services.client import OrchestratorClient, OrchestratorError, PipelineCatalog, TurnResult
from services.client.live import ws_url
from services.testing_ui.settings import VOICES, Settings
from services.testing_ui.view import STAGE_COLUMNS, stage_rows, wav_to_player

if TYPE_CHECKING:
    import gradio as gr

log = logging.getLogger("testing_ui.page")

# status, transcript, reply, reply audio, stage rows, session id
Outputs = tuple[str, str, str, tuple[int, Any] | None, list[list[Any]], str | None]


def _failure(message: str, session: str | None) -> Outputs:
    import gradio as gr

    gr.Warning(message)
    return f"**Error:** {message}", "", "", None, [], session


def _success(
    result: TurnResult, shown_transcript: str, catalog: PipelineCatalog, session: str
) -> Outputs:
    pipeline = result.pipeline or catalog.active
    player = wav_to_player(result.audio_wav) if result.audio_wav else None
    total = sum(s.latency_ms for s in result.stages if s.latency_ms is not None)
    if result.blocked:
        reason = f": {result.block_reason}" if result.block_reason else ""
        status = f"**Blocked by guardrails**{reason} (pipeline `{pipeline}`)"
    else:
        status = f"Answered by pipeline `{pipeline}` — stages took {total:.0f} ms"
    if player is None:
        status += " — no reply audio for this turn"
    rows = stage_rows(result.stages, catalog, pipeline)
    return status, shown_transcript, result.response, player, rows, result.session_id or session


class Page:
    """Event handlers bound to one orchestrator client (no module state)."""

    def __init__(self, client: OrchestratorClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    async def load(self) -> tuple[Any, PipelineCatalog, str]:
        """Fill the pipeline list from the orchestrator; fall back to free text."""
        import gradio as gr

        try:
            catalog = await self.client.pipelines()
        except OrchestratorError as exc:
            msg = (
                f"Could not list pipelines ({exc.message}); type a pipeline name or leave it empty."
            )
            empty = gr.Dropdown(choices=[], value=self.settings.default_pipeline or None)
            return empty, PipelineCatalog(), msg
        value = (
            catalog.active
            or self.settings.default_pipeline
            or (catalog.names[0] if catalog.names else None)
        )
        return gr.Dropdown(choices=catalog.names, value=value), catalog, ""

    async def ask_text(
        self, text: str, pipeline: str | None, catalog: PipelineCatalog, session: str | None
    ) -> Outputs:
        """Send a typed question to /mcp/transcript."""
        text = (text or "").strip()
        if not text:
            return _failure("type a question first", session)
        if len(text) > self.settings.max_text_chars:
            return _failure(
                f"the question has {len(text)} characters; limit {self.settings.max_text_chars}",
                session,
            )
        session = session or uuid.uuid4().hex
        try:
            result = await self.client.text_turn(
                text, session_id=session, pipeline=pipeline or None, audio=True
            )
            return _success(result, result.transcript or text, catalog, session)
        except OrchestratorError as exc:
            log.warning("text turn failed", extra={"status": exc.status})
            return _failure(exc.message, session)

    async def ask_audio(
        self,
        audio_path: str | None,
        pipeline: str | None,
        voice: str | None,
        catalog: PipelineCatalog,
        session: str | None,
    ) -> Outputs:
        """Send recorded or uploaded audio to /v1/voice."""
        if not audio_path:
            return _failure("record or upload audio first", session)
        path = Path(audio_path)
        size = (await asyncio.to_thread(path.stat)).st_size
        if size > self.settings.max_upload_bytes:
            return _failure(
                f"the audio file is {size} bytes; the limit is {self.settings.max_upload_bytes}",
                session,
            )
        data = await asyncio.to_thread(path.read_bytes)
        session = session or uuid.uuid4().hex
        try:
            result = await self.client.voice_turn(
                data,
                filename=path.name,
                media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                session_id=session,
                pipeline=pipeline or None,
                voice=voice,
            )
            return _success(result, result.transcript or "", catalog, session)
        except OrchestratorError as exc:
            log.warning("voice turn failed", extra={"status": exc.status})
            return _failure(exc.message, session)

    @staticmethod
    def reset() -> Outputs:
        """Forget the session: the next turn starts a new conversation."""
        return "New conversation started.", "", "", None, [], None


# Why this page has no live mode yet, shown on the page (docs/services/realtime.md).
LIVE_NOTE = (
    "Live voice sessions (audio streamed while you speak, replies streamed back, barge-in) "
    "run on the orchestrator's OpenAI Realtime WebSocket `{ws}/realtime?model=voice`. This "
    "page does not drive them yet. Gradio's streaming microphone reaches the server in "
    "`stream_every` batches (0.5 s by default) through its event queue, and its streaming "
    "player offers the server no way to cut audio already queued when you interrupt: the "
    "page would add its own delay on both sides and barge-in would keep playing. A browser "
    "client speaking the WebSocket directly (key via the `openai-insecure-api-key.` "
    "subprotocol) is the way to build it. Meanwhile use `python -m services.voice_client "
    "--live --file question.wav` (timings printed) or any OpenAI Realtime client."
)


def build_blocks(client: OrchestratorClient, settings: Settings) -> gr.Blocks:
    """Lay out the page and wire its events."""
    import gradio as gr

    page = Page(client, settings)
    # Reply audio lands in Gradio's file cache: drop files older than an hour, hourly.
    with gr.Blocks(
        title="Audio Orchestrator — testing UI", analytics_enabled=False, delete_cache=(3600, 3600)
    ) as blocks:
        catalog = gr.State(PipelineCatalog())
        session = gr.State(None)
        gr.Markdown(
            "# Audio Orchestrator — testing UI\n"
            f"Speak, upload audio or type; every turn goes to the orchestrator at "
            f"`{client.base_url}`."
        )
        with gr.Row():
            pipeline = gr.Dropdown(
                choices=[],
                allow_custom_value=True,
                label="Pipeline",
                elem_id="pipeline",
                info="From the orchestrator's /v1/pipelines; you may type a name.",
            )
            voice = gr.Dropdown(
                choices=list(VOICES), value=settings.default_voice, label="Voice", elem_id="voice"
            )
        with gr.Row():
            with gr.Column():
                audio_in = gr.Audio(
                    sources=["microphone", "upload"],
                    type="filepath",
                    label="Speak or upload audio",
                    elem_id="audio-in",
                )
                send_audio = gr.Button("Send audio", variant="primary", elem_id="send-audio")
            with gr.Column():
                text_in = gr.Textbox(label="Or type a question", lines=3, elem_id="text-in")
                send_text = gr.Button("Send text", variant="primary", elem_id="send-text")
        status = gr.Markdown(elem_id="status")
        transcript = gr.Textbox(label="Transcript", interactive=False, elem_id="transcript")
        reply = gr.Textbox(label="Reply", interactive=False, lines=3, elem_id="reply")
        reply_audio = gr.Audio(
            label="Reply audio", type="numpy", interactive=False, elem_id="reply-audio"
        )
        stages = gr.Dataframe(
            headers=STAGE_COLUMNS,
            label="Stages",
            interactive=False,
            elem_id="stages",
            column_count=len(STAGE_COLUMNS),
        )
        new_conv = gr.Button("New conversation", elem_id="new-conversation")
        with gr.Accordion("Live mode (streaming microphone)", open=False):
            gr.Markdown(LIVE_NOTE.format(ws=ws_url(client.base_url)), elem_id="live-note")

        outputs = [status, transcript, reply, reply_audio, stages, session]
        blocks.load(page.load, outputs=[pipeline, catalog, status])
        send_text.click(page.ask_text, [text_in, pipeline, catalog, session], outputs)
        text_in.submit(page.ask_text, [text_in, pipeline, catalog, session], outputs)
        send_audio.click(page.ask_audio, [audio_in, pipeline, voice, catalog, session], outputs)
        new_conv.click(page.reset, None, outputs)
    return cast("gr.Blocks", blocks)
