"""Piper backend: ONNX voices through piper-tts 1.8 (imported only here)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from services.tts_common.engine import check_speaks
from services.tts_common.text import split_sentences

log = logging.getLogger("tts_piper.backend")


def _voice_name(onnx: Path) -> str:
    return onnx.name.removesuffix(".onnx")


def find_voice_files(voice: str, voices_dir: Path, download: bool) -> list[Path]:
    """The .onnx files named by the settings: the default voice first, then voices_dir's others."""
    found: list[Path] = []
    spec = Path(voice).expanduser()
    if spec.suffix == ".onnx" or spec.is_file():
        if not spec.is_file():
            raise FileNotFoundError(f"Piper voice file not found: {spec}")
        found.append(spec)
    elif spec.is_dir():
        found.extend(sorted(spec.glob("*.onnx")))
        if not found:
            raise FileNotFoundError(f"no *.onnx Piper voices in {spec}")
    else:
        named = voices_dir / f"{voice}.onnx"
        if not named.is_file():
            if not download:
                raise FileNotFoundError(
                    f"Piper voice {voice!r} not in {voices_dir} and PIPER_DOWNLOAD is off"
                )
            from piper.download_voices import download_voice

            voices_dir.mkdir(parents=True, exist_ok=True)
            log.info("downloading Piper voice", extra={"voice": voice})
            download_voice(voice, voices_dir)
        found.append(named)
    if voices_dir.is_dir():
        found.extend(p for p in sorted(voices_dir.glob("*.onnx")) if p not in found)
    return found


class PiperEngine:
    """One or more loaded Piper voices; the first is the default."""

    name = "piper"

    def __init__(self, voice_files: list[Path], sentence_max_chars: int = 400) -> None:
        from piper import PiperVoice

        self._voices: dict[str, Any] = {}
        self.voice_files: list[Path] = []
        for path in voice_files:
            name = _voice_name(path)
            if name not in self._voices:
                self._voices[name] = PiperVoice.load(str(path))
                self.voice_files.append(path)
        if not self._voices:
            raise FileNotFoundError("no Piper voices to load")
        self.default_voice = next(iter(self._voices))
        self.sentence_max_chars = sentence_max_chars

    @property
    def details(self) -> Mapping[str, object]:
        """What readiness reports: every loaded voice."""
        return {"voices": self.voices()}

    def voices(self) -> list[str]:
        """Loaded voice names, default first."""
        return list(self._voices)

    def sample_rate(self, voice: str) -> int:
        """The voice's native sample rate."""
        return int(self._voices[voice].config.sample_rate)

    def synthesize(self, text: str, voice: str, speed: float) -> Iterator[np.ndarray]:
        """Yield one float32 chunk per sentence; length_scale = 1/speed."""
        from piper import SynthesisConfig

        pv = self._voices[voice]
        config = SynthesisConfig(length_scale=1.0 / speed)
        for sentence in split_sentences(text, self.sentence_max_chars):
            for chunk in pv.synthesize(sentence, config):
                yield np.asarray(chunk.audio_float_array, dtype=np.float32)

    def self_check(self) -> None:
        """Speak a short phrase with every voice; raise if one is silent."""
        for voice in self._voices:
            check_speaks(self, "Ready.", voice)
