"""transformers backend: FLAN-T5 (seq2seq) and causal chat models, GGUF files included."""

from __future__ import annotations

import logging
from typing import Any

from services.llm.backends.common import (
    ChatEngineBase,
    Decoding,
    IncrementalDetokenizer,
    resolve_model,
)
from services.llm.engine import GenerationParams, StopFlag

log = logging.getLogger("llm.transformers")


class TransformersChatEngine(ChatEngineBase):
    """A transformers model with its tokenizer, generating through `generate()`."""

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, model_id: str, device: str) -> None:
        eos = model.generation_config.eos_token_id
        if eos is None:
            eos = tokenizer.eos_token_id
        eos_list = eos if isinstance(eos, list) else [] if eos is None else [eos]
        is_seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
        super().__init__(tokenizer, model_id, is_seq2seq=is_seq2seq, eos_ids=set(eos_list))
        self.model = model
        self.device = device
        pad = model.generation_config.pad_token_id
        if pad is None:
            pad = tokenizer.pad_token_id
        if pad is None and self.eos_ids:
            # Causal models often lack a pad token; generate() warns and needs one for masks.
            pad = min(self.eos_ids)
        self.pad_id: int | None = pad

    @classmethod
    def load(
        cls, spec: str, *, served_name: str = "", device: str = "cpu", torch_threads: int = 0
    ) -> TransformersChatEngine:
        """Load a model and tokenizer (blocking; call from a worker thread)."""
        import torch
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForSeq2SeqLM,
            AutoTokenizer,
        )

        if torch_threads > 0:
            torch.set_num_threads(torch_threads)
        source = resolve_model(spec, served_name)
        kwargs: dict[str, Any] = {}
        if source.gguf_file:
            kwargs["gguf_file"] = source.gguf_file
        config = AutoConfig.from_pretrained(source.path, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source.path, **kwargs)
        auto: Any = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
        # float32: GGUF weights are dequantised to it, and T5 overflows in float16.
        model = auto.from_pretrained(source.path, dtype=torch.float32, **kwargs)
        model.to(device)
        model.eval()
        log.info("model loaded", extra={"model": source.model_id, "kind": type(model).__name__})
        return cls(model, tokenizer, source.model_id, device)

    def _decode(self, run: Decoding) -> tuple[int, bool]:
        import torch

        params = run.params
        input_ids = torch.tensor([run.input_ids], dtype=torch.long, device=self.device)
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "max_new_tokens": params.max_new_tokens,
            "streamer": _make_streamer(run.text),
            "stopping_criteria": _stopping_criteria(run.stop),
            "pad_token_id": self.pad_id,
        }
        kwargs.update(_repetition_controls(params, len(run.input_ids), self.is_seq2seq))
        if params.temperature > 0:
            kwargs.update(
                do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0
            )
        else:
            # Explicitly greedy: hub generation configs may ask for sampling by default.
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if run.seed is not None:
            torch.manual_seed(run.seed)
        with torch.inference_mode():
            output = self.model.generate(**kwargs)
        sequence = output[0].tolist()
        # seq2seq output starts with the decoder start token; causal output repeats the prompt.
        new = sequence[1:] if self.is_seq2seq else sequence[len(run.input_ids) :]
        return len(new), bool(new) and new[-1] in self.eos_ids


def _make_streamer(text: IncrementalDetokenizer) -> Any:
    from transformers.generation.streamers import BaseStreamer

    class TokenStreamer(BaseStreamer):  # type: ignore[misc]
        """Feeds generate()'s new tokens to the shared incremental detokeniser, one at a time."""

        def __init__(self) -> None:
            self.prompt_seen = False

        def put(self, value: Any) -> None:
            if not self.prompt_seen:
                # generate() first hands over the prompt (or the decoder start token).
                self.prompt_seen = True
                return
            text.add(int(t) for t in value.reshape(-1).tolist())

        def end(self) -> None:
            pass  # ChatEngineBase.generate flushes the held-back tail once generate() returns

    return TokenStreamer()


def _repetition_controls(
    params: GenerationParams, prompt_len: int, seq2seq: bool
) -> dict[str, Any]:
    """generate() arguments for the request's repetition controls (none when all are off)."""
    out: dict[str, Any] = {}
    if params.repetition_penalty is not None and params.repetition_penalty != 1.0:
        out["repetition_penalty"] = params.repetition_penalty
    if params.no_repeat_ngram_size > 0:
        out["no_repeat_ngram_size"] = params.no_repeat_ngram_size
    if params.frequency_penalty or params.presence_penalty:
        from transformers import LogitsProcessorList

        # Causal input_ids hold the prompt first; only the reply's tokens are penalised (OpenAI).
        start = 1 if seq2seq else prompt_len
        out["logits_processor"] = LogitsProcessorList(
            [_openai_penalties(params.frequency_penalty, params.presence_penalty, start)]
        )
    return out


def _openai_penalties(frequency: float, presence: float, start: int) -> Any:
    import torch
    from transformers import LogitsProcessor

    class OpenAIPenalties(LogitsProcessor):  # type: ignore[misc]
        """OpenAI's rule: logit -= count × frequency_penalty + (count > 0) × presence_penalty."""

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            generated = input_ids[:, start:]
            if generated.shape[1] == 0:
                return scores
            counts = torch.zeros_like(scores)
            counts.scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
            return scores - counts * frequency - (counts > 0).to(scores.dtype) * presence

    return OpenAIPenalties()


def _stopping_criteria(should_stop: StopFlag) -> Any:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class FlagCriteria(StoppingCriteria):  # type: ignore[misc]
        """Ends generation when the caller asks (client gone, stop string seen)."""

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full(
                (input_ids.shape[0],), should_stop(), dtype=torch.bool, device=input_ids.device
            )

    return StoppingCriteriaList([FlagCriteria()])
