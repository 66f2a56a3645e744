"""Render a transcription in the OpenAI response formats."""

from __future__ import annotations

from typing import Any

from services.stt.engine import Segment, Transcription

RESPONSE_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
GRANULARITIES = ("word", "segment")


def _timestamp(seconds: float, separator: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def to_srt(segments: list[Segment]) -> str:
    """SubRip subtitles, one cue per segment."""
    cues = [
        f"{i}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{s.text.strip()}\n"
        for i, s in enumerate(segments, start=1)
    ]
    return "\n".join(cues)


def to_vtt(segments: list[Segment]) -> str:
    """WebVTT subtitles, one cue per segment."""
    cues = [
        f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{s.text.strip()}\n"
        for s in segments
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def segment_json(s: Segment) -> dict[str, Any]:
    """A segment as OpenAI's verbose_json reports it."""
    return {
        "id": s.id,
        "seek": s.seek,
        "start": round(s.start, 3),
        "end": round(s.end, 3),
        "text": s.text,
        "tokens": s.tokens,
        "temperature": s.temperature,
        "avg_logprob": s.avg_logprob,
        "compression_ratio": s.compression_ratio,
        "no_speech_prob": s.no_speech_prob,
    }


def to_verbose_json(result: Transcription, granularities: set[str]) -> dict[str, Any]:
    """OpenAI's verbose_json: text, language, duration, segments and (on request) words."""
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": result.language,
        "duration": round(result.duration, 3),
        "text": result.text,
    }
    # OpenAI's default granularity is segment; asking for words alone returns only words.
    if not granularities or "segment" in granularities:
        body["segments"] = [segment_json(s) for s in result.segments]
    if "word" in granularities:
        body["words"] = [
            {"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3)}
            for w in result.words
        ]
    return body
