"""Command-line voice client: speak (or type) to the orchestrator, hear or save the reply."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from pathlib import Path
from typing import TextIO

from services.client import OrchestratorClient, OrchestratorError, RetryPolicy, TurnResult
from services.kit import ApiError
from services.kit.audio import decode_audio, encode_wav, from_pcm16, to_pcm16
from services.voice_client.audio_devices import AudioDeviceUnavailable, play_wav, record

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_ORCHESTRATOR = 3
EXIT_DEVICE = 4


def build_parser() -> argparse.ArgumentParser:
    """Argument parser for `python -m services.voice_client`."""
    p = argparse.ArgumentParser(
        prog="voice_client",
        description="Send speech (microphone or --file) or text (--text) to the orchestrator.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--file", type=Path, help="audio file to send (WAV/FLAC/OGG/MP3)")
    src.add_argument("--text", help="ask in text via /mcp/transcript instead of speaking")
    src.add_argument(
        "--record",
        type=float,
        metavar="SECONDS",
        default=None,
        help="record this many seconds from the microphone (default 5 when no --file/--text)",
    )
    p.add_argument(
        "--live",
        action="store_true",
        help="stream the speech at real-time pace over the realtime WebSocket (openai SDK): "
        "the server detects the end of the turn and streams the reply; timings are printed",
    )
    p.add_argument("--url", default="http://localhost:8220", help="orchestrator base URL")
    p.add_argument("--api-key", default=None, help="bearer key when ORCHESTRATOR_API_KEYS is set")
    p.add_argument("--session", default=None, help="session id (default: a new random one)")
    p.add_argument("--pipeline", default=None, help="pipeline name (default: the active one)")
    p.add_argument("--out", type=Path, default=None, help="save the reply audio to this WAV file")
    p.add_argument("--play", action="store_true", help="play the reply on the speakers")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one turn")
    p.add_argument("--retries", type=int, default=4, help="attempts when the orchestrator is down")
    p.add_argument("--retry-base", type=float, default=0.5, help="first backoff delay in seconds")
    return p


def format_stages(result: TurnResult) -> str:
    """A fixed-width table of the per-stage results and timings."""
    rows = [("stage", "provider", "status", "attempts", "ms")]
    for s in result.stages:
        ms = "-" if s.latency_ms is None else f"{s.latency_ms:.0f}"
        attempts = "-" if s.attempts is None else str(s.attempts)
        status = s.status if not s.error else f"{s.status} ({s.error[:60]})"
        rows.append((s.stage, s.provider or "-", status, attempts, ms))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_result(result: TurnResult, out: TextIO) -> None:
    """Print transcript, reply and the stage table."""
    if result.transcript is not None:
        print(f"You:       {result.transcript}", file=out)
    print(f"Assistant: {result.response}", file=out)
    if result.blocked:
        print("(the reply was blocked by the guardrails)", file=out)
    print(
        f"session={result.session_id} pipeline={result.pipeline} attempts={result.attempts}",
        file=out,
    )
    if result.stages:
        print(format_stages(result), file=out)


async def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run one turn as the arguments say; returns the process exit code."""
    session = args.session or f"cli-{uuid.uuid4().hex[:12]}"
    wav: bytes | None = None
    if args.text is None:
        if args.file is not None:
            try:
                wav = args.file.read_bytes()
            except OSError as exc:
                print(f"error: cannot read {args.file}: {exc.strerror}", file=err)
                return EXIT_USAGE
        else:
            seconds = args.record if args.record is not None else 5.0
            try:
                print(f"Recording {seconds:.1f} s from the microphone…", file=err)
                wav = encode_wav(await asyncio.to_thread(record, seconds), 16000)
            except AudioDeviceUnavailable as exc:
                print(f"error: {exc}", file=err)
                return EXIT_DEVICE
    if args.live:
        if wav is None:
            print("error: --live streams speech: use --file or --record", file=err)
            return EXIT_USAGE
        return await run_live(args, wav, session, out, err)
    policy = RetryPolicy(max_attempts=max(1, args.retries), base_delay_s=args.retry_base)
    async with OrchestratorClient(
        args.url, api_key=args.api_key, timeout_s=args.timeout, retry=policy
    ) as client:
        try:
            if wav is None:
                # Ask for speech only when it will be used: TTS is the slowest stage.
                want_audio = args.out is not None or args.play
                result = await client.text_turn(
                    args.text, session_id=session, pipeline=args.pipeline, audio=want_audio
                )
            else:
                result = await client.voice_turn(wav, session_id=session, pipeline=args.pipeline)
        except OrchestratorError as exc:
            print(f"error: {exc.message}", file=err)
            return EXIT_ORCHESTRATOR
    print_result(result, out)
    if result.audio_wav is None:
        if args.out is not None or args.play:
            print("note: the orchestrator returned no reply audio", file=err)
        return EXIT_OK
    if args.out is not None:
        args.out.write_bytes(result.audio_wav)
        print(f"reply audio saved to {args.out}", file=out)
    if args.play:
        try:
            await asyncio.to_thread(play_wav, result.audio_wav)
        except AudioDeviceUnavailable as exc:
            print(f"error: {exc}", file=err)
            return EXIT_DEVICE
    return EXIT_OK


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


async def run_live(
    args: argparse.Namespace, wav: bytes, session: str, out: TextIO, err: TextIO
) -> int:
    """One turn over /v1/realtime: stream, print transcript, reply and timings, save audio."""
    from openai import OpenAIError
    from websockets.exceptions import WebSocketException

    from services.client.live import RATE, live_turn

    try:
        speech = to_pcm16(decode_audio(wav, RATE).samples)
        result = await live_turn(
            args.url,
            speech,
            api_key=args.api_key,
            pipeline=args.pipeline or "voice",
            session_id=session,
            timeout_s=args.timeout,
        )
    except (OSError, TimeoutError, ApiError, OpenAIError, WebSocketException) as exc:
        print(f"error: live session failed: {exc}", file=err)
        return EXIT_ORCHESTRATOR
    for problem in result.errors:
        print(f"server error: {problem}", file=err)
    if result.transcript is not None:
        print(f"You:       {result.transcript}", file=out)
    print(f"Assistant: {result.response}", file=out)
    print(
        f"status={result.status or 'none'} session={session} "
        f"end of speech → speech_stopped {_ms(result.since_speech_end(result.speech_stopped))}, "
        f"→ first audio {_ms(result.since_speech_end(result.first_audio))}, "
        f"→ done {_ms(result.since_speech_end(result.done))}",
        file=out,
    )
    reply_wav = encode_wav(from_pcm16(result.audio), RATE) if result.audio else None
    if args.out is not None and reply_wav is not None:
        args.out.write_bytes(reply_wav)
        print(f"reply audio saved to {args.out}", file=out)
    if args.play and reply_wav is not None:
        try:
            await asyncio.to_thread(play_wav, reply_wav)
        except AudioDeviceUnavailable as exc:
            print(f"error: {exc}", file=err)
            return EXIT_DEVICE
    return EXIT_OK if result.status == "completed" else EXIT_ORCHESTRATOR


def main(argv: list[str] | None = None) -> int:
    """Entry point of the command-line client."""
    args = build_parser().parse_args(argv)
    return asyncio.run(run(args, sys.stdout, sys.stderr))
