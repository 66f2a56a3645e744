"""Bark through transformers' BarkModel (torch and transformers imported only here)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from services.tts_bark.engine import DEFAULT_VOICE
from services.tts_common.engine import check_speaks
from services.tts_common.text import split_sentences

log = logging.getLogger("tts_bark.backend")


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
        self_check_enabled: bool = True,
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
        self._default_preset = voice_preset if voice_preset in self.presets else None
        if voice_preset and self._default_preset is None:
            log.warning("Bark voice preset not in checkpoint", extra={"preset": voice_preset})
        self.semantic_max_new_tokens = semantic_max_new_tokens
        self.sentence_max_chars = sentence_max_chars
        self.self_check_enabled = self_check_enabled

    @property
    def default_preset(self) -> str | None:
        """The preset `default` speaks with (None when the checkpoint lacks the configured one)."""
        return self._default_preset

    @property
    def details(self) -> Mapping[str, object]:
        """What readiness reports: device, output rate, number of speaker presets."""
        return {"device": self.device, "sample_rate": self.rate, "presets": len(self.presets)}

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
        preset = self._default_preset if voice == DEFAULT_VOICE else voice
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

    def self_check(self) -> None:
        """Generate a short phrase (skipped with BARK_SELF_CHECK=false); raise if it is silent."""
        if self.self_check_enabled:
            # Any non-zero sample counts: a checkpoint's loudness is its own, unlike Piper's.
            check_speaks(self, "Hello.", DEFAULT_VOICE, min_peak=0.0)
