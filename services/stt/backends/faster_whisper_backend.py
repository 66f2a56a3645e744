"""faster-whisper (CTranslate2) backend: int8 on CPU, float16 on GPU."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from services.stt.engine import (
    InvalidOptionError,
    ModelUnavailableError,
    Segment,
    TranscribeOptions,
    Transcription,
    Word,
    check_transcribes,
)
from services.stt.settings import Settings, looks_like_path

log = logging.getLogger("stt.faster_whisper")

# faster-whisper's own schedule: retry hotter when a decode looks like a loop or gibberish.
_FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
_FRAMES_PER_S = 100  # Whisper's mel frames: 10 ms hop
_WINDOW_FRAMES = 3000  # Whisper's fixed 30 s encoder window


def fitted_model_class(pad_s: float) -> type[Any]:
    """A WhisperModel whose encoder sees the audio plus `pad_s` of padding, not always 30 s.

    Whisper pads every window to 30 s and the encoder's cost is the window's, so a 2 s
    question pays for 30 s. CTranslate2 encodes shorter inputs and the decoder attends to what
    is there. Too little padding makes the decoder repeat the question (seen at 3 s); with 5 s,
    WER on the 160 eval clips stayed within run-to-run noise of the full window's and the
    median transcription was 7× faster (docs/quality.md, "Encoder window"). The padding
    faster-whisper adds is all-zero mel columns (real audio's normalised log-mel never is):
    they are cut.
    """
    from faster_whisper import WhisperModel

    keep_pad = round(pad_s * _FRAMES_PER_S)

    class FittedWhisperModel(WhisperModel):  # type: ignore[misc]
        def encode(self, features: np.ndarray) -> Any:
            if features.ndim == 2:
                features = features[None]
            used = np.flatnonzero(np.any(features[0] != 0, axis=0))
            if len(used) == 0 or int(used[-1]) + 1 >= features.shape[-1]:
                return super().encode(features)  # no padding to cut (a full 30 s window)
            end = int(used[-1]) + 1
            keep = min(features.shape[-1], end + keep_pad)
            keep += keep % 2  # the encoder's stride-2 convolution wants an even length
            fitted = np.array(features[..., :keep])
            # Pad as Whisper was trained: its log-mel of digital silence, clamped 8 (log10)
            # below the clip's peak, is the peak − 2 once normalised; faster-whisper's 0 is not.
            fitted[..., end:] = features[..., :end].max() - 2.0
            return super().encode(fitted)

    return FittedWhisperModel


def resolve_device(device: str, compute_type: str) -> tuple[str, str]:
    """Turn `auto` device / compute type into concrete CTranslate2 values."""
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


class FasterWhisperEngine:
    """A loaded faster-whisper model."""

    name = "faster-whisper"

    def __init__(self, model: Any, device: str, compute_type: str) -> None:
        self._model = model
        self.device = device
        self.compute_type = compute_type
        self._languages = frozenset(model.supported_languages)

    @property
    def languages(self) -> frozenset[str]:
        """Language codes the model can transcribe."""
        return self._languages

    @property
    def details(self) -> dict[str, str]:
        """Device and compute type, for readiness."""
        return {"device": self.device, "compute_type": self.compute_type}

    def self_check(self) -> None:
        """A real transcription of a fixed clip (blocking)."""
        check_transcribes(self)

    @classmethod
    def load(cls, settings: Settings) -> FasterWhisperEngine:
        """Load the model from a local directory or the hub (blocking)."""
        from faster_whisper import WhisperModel
        from huggingface_hub import constants as hf_constants
        from huggingface_hub.errors import LocalEntryNotFoundError

        device, compute_type = resolve_device(settings.device, settings.compute_type)
        ref = settings.model
        offline = settings.local_files_only or bool(hf_constants.HF_HUB_OFFLINE)
        if looks_like_path(ref):
            path = Path(ref).expanduser()
            if not (path / "model.bin").is_file():
                raise ModelUnavailableError(
                    f"STT_MODEL={ref!r} is not a CTranslate2 Whisper model directory "
                    "(no model.bin there)"
                )
            ref = str(path)
        fitted = settings.encoder_pad_s * _FRAMES_PER_S < _WINDOW_FRAMES
        model_class = fitted_model_class(settings.encoder_pad_s) if fitted else WhisperModel
        try:
            model = model_class(
                ref,
                device=device,
                compute_type=compute_type,
                cpu_threads=settings.cpu_threads,
                # One CTranslate2 worker per allowed concurrent request, so they run in parallel.
                num_workers=settings.max_concurrency,
                download_root=settings.download_root,
                local_files_only=offline,
            )
        except LocalEntryNotFoundError as exc:
            where = (
                "the Hugging Face hub is offline (HF_HUB_OFFLINE=1 or STT_LOCAL_FILES_ONLY=true)"
                if offline
                else "the Hugging Face hub could not be reached"
            )
            raise ModelUnavailableError(
                f"Whisper model {settings.model!r} could not be found locally and {where}; "
                "set STT_MODEL to a local CTranslate2 model directory or allow downloads"
            ) from exc
        log.info(
            "model loaded",
            extra={"model": settings.model, "device": device, "compute_type": compute_type},
        )
        return cls(model, device, compute_type)

    def transcribe(self, samples: np.ndarray, options: TranscribeOptions) -> Transcription:
        """Transcribe 16 kHz mono float32 samples (blocking)."""
        if options.language is not None and options.language not in self._languages:
            raise InvalidOptionError(
                "language",
                f"language {options.language!r} is not supported by this model"
                + (" (English-only)" if self._languages == {"en"} else ""),
            )
        temperature: float | tuple[float, ...] = (
            _FALLBACK_TEMPERATURES if options.temperature is None else options.temperature
        )
        segments_iter, info = self._model.transcribe(
            samples,
            language=options.language,
            initial_prompt=options.prompt or None,
            temperature=temperature,
            beam_size=options.beam_size,
            word_timestamps=options.word_timestamps,
            vad_filter=options.vad_filter,
        )
        # The generator does the decoding; drain it here, inside the worker thread.
        segments = [_segment(i, s) for i, s in enumerate(segments_iter)]
        text = "".join(s.text for s in segments).strip()
        return Transcription(
            text=text,
            language=info.language,
            duration=float(info.duration),
            segments=segments,
        )


def _segment(index: int, s: Any) -> Segment:
    words = [
        Word(word=w.word, start=float(w.start), end=float(w.end), probability=float(w.probability))
        for w in (s.words or [])
    ]
    return Segment(
        id=index,
        seek=int(s.seek),
        start=float(s.start),
        end=float(s.end),
        text=s.text,
        tokens=list(s.tokens),
        temperature=float(s.temperature or 0.0),
        avg_logprob=float(s.avg_logprob),
        compression_ratio=float(s.compression_ratio),
        no_speech_prob=float(s.no_speech_prob),
        words=words,
    )
