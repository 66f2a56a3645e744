"""Bark through transformers' BarkModel (torch and transformers imported only here)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from services.tts_common.text import split_sentences

log = logging.getLogger("tts_bark.backend")

DEFAULT_VOICE = "default"


def _pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class BarkEngine:
    """A loaded Bark checkpoint (semantic → coarse → fine → EnCodec)."""

    name = "bark"

    def __init__(
        self,
        model_id: str,
        *,
        device: str = "auto",
        voice_preset: str = "",
        semantic_max_new_tokens: int = 768,
        sentence_max_chars: int = 200,
    ) -> None:
        import torch
        from transformers import AutoProcessor, BarkModel

        self.device = _pick_device(device)
        # Half precision halves GPU memory and time; CPU kernels want float32.
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        auto_processor: Any = AutoProcessor
        bark_model: Any = BarkModel
        self.processor: Any = auto_processor.from_pretrained(model_id)
        self.model: Any = bark_model.from_pretrained(model_id, dtype=dtype).to(self.device).eval()
        self.rate = int(getattr(self.model.generation_config, "sample_rate", 24_000))
        presets = getattr(self.processor, "available_voice_presets", [])
        if callable(presets):  # a method in older transformers, a property in 5.x
            presets = presets()
        self.presets: list[str] = sorted(p for p in presets if p != "repo_or_path")
        self.default_preset = voice_preset if voice_preset in self.presets else None
        if voice_preset and self.default_preset is None:
            log.warning("Bark voice preset not in checkpoint", extra={"preset": voice_preset})
        self.semantic_max_new_tokens = semantic_max_new_tokens
        self.sentence_max_chars = sentence_max_chars

    def voices(self) -> list[str]:
        """'default' plus every speaker preset the checkpoint ships."""
        return [DEFAULT_VOICE, *self.presets]

    def sample_rate(self, voice: str) -> int:
        """Bark's output rate (24 kHz for the suno checkpoints)."""
        return self.rate

    def synthesize(self, text: str, voice: str, speed: float) -> Iterator[np.ndarray]:
        """Yield one float32 chunk per sentence; Bark has no rate control, so speed must be 1."""
        import torch

        if speed != 1.0:
            raise ValueError("Bark cannot change speaking rate")
        preset = self.default_preset if voice == DEFAULT_VOICE else voice
        for sentence in split_sentences(text, self.sentence_max_chars):
            encoded = self.processor(sentence, voice_preset=preset, return_tensors="pt")
            # BatchFeature.to() skips the nested speaker prompt, which would stay on the CPU.
            history = encoded.pop("history_prompt", None)
            inputs = {k: v.to(self.device) for k, v in encoded.items()}
            if history is not None:
                inputs["history_prompt"] = {
                    k: torch.as_tensor(v).to(self.device) for k, v in history.items()
                }
            with torch.inference_mode():
                audio = self.model.generate(
                    **inputs, semantic_max_new_tokens=self.semantic_max_new_tokens
                )
            out = audio[0].float().cpu().numpy().astype(np.float32)
            if not np.isfinite(out).all():
                raise RuntimeError("Bark produced non-finite samples")
            yield out

    def self_check(self) -> float:
        """Generate a short phrase; return its length in seconds (raise if empty)."""
        audio = np.concatenate(list(self.synthesize("Hello.", DEFAULT_VOICE, 1.0)))
        if audio.size == 0:
            raise RuntimeError("Bark produced no audio in its self-check")
        return audio.size / self.rate
