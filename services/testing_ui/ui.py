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


# How to use the live mode, shown on the page (docs/services/ui.md, docs/services/realtime.md).
LIVE_HOWTO = (
    "**Start live** opens a live voice session with the pipeline chosen above: speak, pause, "
    "and the reply plays while it is still being written; speak over it to interrupt it. The "
    "page streams your microphone (40 ms chunks, resampled to 24 kHz) as OpenAI Realtime "
    "events through this UI's relay `/live/realtime` to the orchestrator's "
    "`{ws}/realtime` — the orchestrator key stays on the UI's server. The microphone needs "
    "https or `http://localhost`. Use headphones or a browser with echo cancellation (asked "
    "for), or the reply heard by the microphone interrupts itself. Timings per turn: the "
    "server's end of speech → first audio sent, and the page's end-of-speech event → first "
    "audio received (and audible, with the scheduling lead and the device's output latency); "
    "the browser's own audio path is shown below once started."
)

# The live block; static/live.js (loaded through `head`) gives it behaviour.
LIVE_HTML = """
<div id="live" data-relay="{relay}">
  <div>
    <button type="button" data-live="start" id="live-start" disabled>Start live</button>
    <button type="button" data-live="stop" id="live-stop" disabled>Stop</button>
    <span>state: <b data-live="state" id="live-state">idle</b></span>
  </div>
  <p data-live="error" id="live-error" role="alert" style="color:#b91c1c"></p>
  <p>You said: <span data-live="user" id="live-user"></span></p>
  <p>Reply: <span data-live="reply" id="live-reply"></span></p>
  <p>Audio path: <span data-live="path" id="live-path">not started</span></p>
  <p>Appends sent: <span data-live="sent" id="live-sent">0</span> · reply chunks scheduled:
    <span data-live="chunks" id="live-chunks">0</span> · turns:
    <span data-live="turns-count" id="live-turn-count">0</span> · barge-ins:
    <span data-live="truncated" id="live-truncated">0</span></p>
  <table id="live-turns-table">
    <thead><tr><th>turn</th><th>you said</th><th>reply</th>
      <th>end of speech → first audio (server)</th><th>… received by the page</th>
      <th>status</th></tr></thead>
    <tbody data-live="turns" id="live-turns"></tbody>
  </table>
</div>
"""
# The head script may still be loading when the block is drawn: try again until it is there.
_ATTACH = (
    "const go = () => window.liveClient"
    " ? window.liveClient.attach(element.querySelector('#live')) : setTimeout(go, 50); go();"
)


def build_blocks(
    client: OrchestratorClient, settings: Settings, script: str, relay: str
) -> gr.Blocks:
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
        with gr.Accordion("Live mode (streaming microphone)", open=False, elem_id="live-mode"):
            gr.Markdown(LIVE_HOWTO.format(ws=ws_url(client.base_url)), elem_id="live-note")
            gr.HTML(
                LIVE_HTML.format(relay=relay),
                head=f'<script src="{script}"></script>',
                js_on_load=_ATTACH,
                elem_id="live-block",
            )

        outputs = [status, transcript, reply, reply_audio, stages, session]
        blocks.load(page.load, outputs=[pipeline, catalog, status])
        send_text.click(page.ask_text, [text_in, pipeline, catalog, session], outputs)
        text_in.submit(page.ask_text, [text_in, pipeline, catalog, session], outputs)
        send_audio.click(page.ask_audio, [audio_in, pipeline, voice, catalog, session], outputs)
        new_conv.click(page.reset, None, outputs)
    return cast("gr.Blocks", blocks)
