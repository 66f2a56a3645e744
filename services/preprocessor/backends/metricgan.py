"""MetricGAN+ (speechbrain/metricgan-plus-voicebank) in plain torch: no speechbrain, no torchaudio.

The hub model is a speechbrain `SpectralMaskEnhancement`: `hyperparams.yaml` names the STFT,
the magnitude compression and the generator; `enhance_model.ckpt` is the generator's
`state_dict`. This module reads those two files as they are published and runs the same
computation as speechbrain 1.x (speechbrain/inference/enhancement.py, lobes/models/MetricGAN.py,
processing/features.py and signal_processing.resynthesize):

    spec  = STFT(x)                       # centred, zero padded, Hamming window, one-sided
    feats = log1p(|spec|)                 # spectral_magnitude(power=0.5), eps 1e-14
    mask  = 1.2 * sigmoid(slope * Linear(LeakyReLU(Linear(BiLSTM(feats)))))
    y     = ISTFT(expm1(mask * feats) * e^(i * angle(spec)))   # noisy phase, input length
    y     = y / (max|y| + 1e-14)          # resynth's normalize_wavs (default on)

speechbrain itself needs torchaudio, which pins torch 2.9.x: a separate multi-GB install that
the rest of the project (torch 2.13 CPU) cannot share. The generator is 2 BiLSTM layers and
2 linear layers, so owning this small forward pass is cheaper than owning that environment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from services.kit.audio import resample
from services.preprocessor.engine import DenoiseEngine, DenoiseStream, EngineUnavailable
from services.preprocessor.settings import Settings

log = logging.getLogger("preprocessor.metricgan")

MODEL_RATE = 16_000
HPARAMS_FILE = "hyperparams.yaml"
CHECKPOINT_FILE = "enhance_model.ckpt"
GENERATOR_CLASS = "speechbrain.lobes.models.MetricGAN.EnhancementGenerator"
# Window functions speechbrain recipes name in hyperparams (`!name:torch.<fn>`).
WINDOWS = ("hamming_window", "hann_window", "blackman_window", "bartlett_window")


# --- hyperparams.yaml ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Tagged:
    """A HyperPyYAML node (`!new:`, `!name:`, `!ref`, ...): its tag and its raw value."""

    tag: str
    value: Any


class _HyperLoader(yaml.SafeLoader):
    """Reads HyperPyYAML without executing it: every `!tag` becomes a `_Tagged` node."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> _Tagged:
    value: Any
    if isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)  # type: ignore[arg-type]
    return _Tagged(suffix, value)


_HyperLoader.add_multi_constructor("!", _tagged)


@dataclass(frozen=True)
class SpectralSetup:
    """The STFT / resynthesis settings a MetricGAN+ hyperparams file describes."""

    sample_rate: int = MODEL_RATE
    n_fft: int = 512
    win_length: int = 512  # samples (speechbrain writes milliseconds)
    hop_length: int = 256
    window: str = "hamming_window"
    power: float = 0.5
    normalize: bool = True
    input_size: int = 257
    hidden_size: int = 200
    num_layers: int = 2


class _Hparams:
    """Resolves `!ref <name>` against the top level of a parsed hyperparams file."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def resolve(self, value: Any, depth: int = 0) -> Any:
        """The value with references followed (a tagged node stays tagged)."""
        if depth > 20:
            raise ValueError("reference loop in hyperparams.yaml")
        if isinstance(value, _Tagged) and value.tag == "ref":
            name = str(value.value).strip()
            if not (name.startswith("<") and name.endswith(">")):
                raise ValueError(f"unsupported !ref expression: {name}")
            key = name[1:-1]
            node: Any = self.doc
            for part in key.replace("]", "").replace("[", ".").split("."):
                node = node[part]
            return self.resolve(node, depth + 1)
        return value

    def node(self, key: str, expected_prefix: str) -> _Tagged:
        """The top-level entry `key`, which must be a `!new:`/`!name:` of `expected_prefix`."""
        if key not in self.doc:
            raise ValueError(f"hyperparams.yaml has no '{key}'")
        node = self.resolve(self.doc[key])
        if not (isinstance(node, _Tagged) and node.tag.split(":", 1)[-1] == expected_prefix):
            got = node.tag if isinstance(node, _Tagged) else type(node).__name__
            raise ValueError(f"hyperparams.yaml '{key}' is {got}, expected {expected_prefix}")
        return node

    def args(self, node: _Tagged) -> dict[str, Any]:
        """A node's keyword arguments with references resolved."""
        raw = node.value if isinstance(node.value, dict) else {}
        return {str(k): self.resolve(v) for k, v in raw.items()}


def _window_name(value: Any) -> str:
    if value is None:
        return "hamming_window"  # speechbrain's STFT default
    if not (isinstance(value, _Tagged) and value.tag.startswith("name:torch.")):
        raise ValueError(f"unsupported window_fn in hyperparams.yaml: {value!r}")
    name = value.tag.removeprefix("name:torch.")
    if name not in WINDOWS:
        raise ValueError(f"unsupported window_fn torch.{name}")
    return name


def read_hparams(path: Path) -> SpectralSetup:
    """Read the STFT, magnitude, resynthesis and generator settings of a MetricGAN+ hparams file."""
    doc = yaml.load(path.read_text(), Loader=_HyperLoader)  # a SafeLoader: builds no objects
    if not isinstance(doc, dict):
        raise ValueError(f"{path} is not a YAML mapping")
    hp = _Hparams(doc)
    stft = hp.args(hp.node("compute_stft", "speechbrain.processing.features.STFT"))
    rate = int(stft.get("sample_rate", MODEL_RATE))
    if rate != MODEL_RATE:
        raise ValueError(f"MetricGAN+ runs at {MODEL_RATE} Hz; hyperparams.yaml says {rate}")
    # speechbrain gives window and hop in milliseconds (defaults 25 / 10) and rounds to samples.
    win = round(rate / 1000.0 * float(stft.get("win_length", 25)))
    hop = round(rate / 1000.0 * float(stft.get("hop_length", 10)))
    n_fft = int(stft.get("n_fft", 400))
    for flag, default in (("center", True), ("normalized_stft", False), ("onesided", True)):
        if bool(stft.get(flag, default)) != default:
            raise ValueError(f"unsupported STFT setting {flag}={stft[flag]}")
    if stft.get("pad_mode", "constant") != "constant":
        raise ValueError(f"unsupported STFT pad_mode {stft['pad_mode']}")
    magnitude = hp.args(
        hp.node("spectral_magnitude", "speechbrain.processing.features.spectral_magnitude")
    )
    if magnitude.get("log", False):
        raise ValueError("unsupported spectral_magnitude log=True")
    resynth = hp.args(hp.node("resynth", "speechbrain.processing.signal_processing.resynthesize"))
    istft = resynth.get("istft")
    if isinstance(istft, _Tagged):
        istft_args = hp.args(istft)
        if _window_name(istft_args.get("window_fn")) != _window_name(stft.get("window_fn")):
            raise ValueError("STFT and ISTFT windows differ; not supported")
    generator = hp.args(hp.node("enhance_model", GENERATOR_CLASS))
    return SpectralSetup(
        sample_rate=rate,
        n_fft=n_fft,
        win_length=win,
        hop_length=hop,
        window=_window_name(stft.get("window_fn")),
        power=float(magnitude.get("power", 1.0)),
        normalize=bool(resynth.get("normalize_wavs", True)),
        input_size=int(generator.get("input_size", 257)),
        hidden_size=int(generator.get("hidden_size", 200)),
        num_layers=int(generator.get("num_layers", 2)),
    )


# --- locating the files ---------------------------------------------------------------------


def locate_model(source: str, savedir: str | None) -> Path:
    """The directory holding hyperparams.yaml and enhance_model.ckpt for `source`.

    `source` is a local directory, or a hub id fetched into `savedir` (or the hub cache) unless
    both files are already there. Raises EngineUnavailable naming what is missing.
    """
    wanted = (HPARAMS_FILE, CHECKPOINT_FILE)
    local = Path(source).expanduser()
    if local.is_dir() or source.startswith((".", "/", "~")):
        missing = [name for name in wanted if not (local / name).is_file()]
        if missing:
            raise EngineUnavailable(
                f"MetricGAN+ files missing in {local}: {', '.join(missing)} (copy them from"
                " the speechbrain/metricgan-plus-voicebank model repository)"
            )
        return local
    target = Path(savedir).expanduser() if savedir else None
    if target is not None and all((target / name).is_file() for name in wanted):
        return target
    try:
        from huggingface_hub import hf_hub_download

        paths = [
            Path(hf_hub_download(source, name, local_dir=str(target) if target else None))
            for name in wanted
        ]
    except Exception as exc:  # offline, unknown repo, no huggingface_hub: say which and where
        where = f" into {target}" if target else ""
        raise EngineUnavailable(
            f"MetricGAN+ weights not found: could not fetch {CHECKPOINT_FILE} and"
            f" {HPARAMS_FILE} of {source}{where} ({type(exc).__name__}); put both files in"
            " DENOISE_METRICGAN_SAVEDIR or point DENOISE_METRICGAN_SOURCE at a directory"
            " holding them"
        ) from exc
    return paths[0].parent


# --- the model -----------------------------------------------------------------------------


def _build_generator(setup: SpectralSetup) -> Any:
    """speechbrain's EnhancementGenerator with its parameter names (the checkpoint's keys)."""
    import torch
    from torch import nn

    class _BLSTM(nn.Module):
        """speechbrain.nnet.RNN.LSTM: a batch-first torch LSTM stored as `.rnn`."""

        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.LSTM(
                input_size=setup.input_size,
                hidden_size=setup.hidden_size,
                num_layers=setup.num_layers,
                bidirectional=True,
                batch_first=True,
            )

    class _LearnableSigmoid(nn.Module):
        """1.2 * sigmoid(slope * x), one slope per frequency bin."""

        def __init__(self, features: int) -> None:
            super().__init__()
            self.slope = nn.Parameter(torch.ones(features))

        def forward(self, x: Any) -> Any:
            return 1.2 * torch.sigmoid(self.slope * x)

    class _Generator(nn.Module):
        """BiLSTM → Linear(2h, 300) → LeakyReLU(0.3) → Linear(300, bins) → learnable sigmoid."""

        def __init__(self) -> None:
            super().__init__()
            self.activation = nn.LeakyReLU(negative_slope=0.3)
            self.blstm = _BLSTM()
            self.linear1 = nn.Linear(2 * setup.hidden_size, 300)
            self.linear2 = nn.Linear(300, setup.input_size)
            self.Learnable_sigmoid = _LearnableSigmoid(setup.input_size)

        def forward(self, feats: Any) -> Any:
            # One unpadded clip per call: speechbrain's pack_padded_sequence with relative
            # length 1.0 covers every frame, which is the same as not packing.
            out, _ = self.blstm.rnn(feats)
            out = self.activation(self.linear1(out))
            return self.Learnable_sigmoid(self.linear2(out))

    return _Generator()


class _ClipStream(DenoiseStream):
    """MetricGAN+ sees the whole clip: input is buffered and enhanced at `finish`."""

    def __init__(self, engine: MetricGanEngine, sample_rate: int) -> None:
        self._engine = engine
        self._rate = sample_rate
        self._parts: list[np.ndarray] = []

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Buffer; nothing is ready before the end."""
        self._parts.append(np.asarray(samples, dtype=np.float32))
        return np.zeros(0, dtype=np.float32)

    def finish(self) -> np.ndarray:
        """Enhance everything buffered."""
        x = np.concatenate(self._parts) if self._parts else np.zeros(0, np.float32)
        self._parts = []
        return self._engine.enhance(x, self._rate) if len(x) else x


class MetricGanEngine(DenoiseEngine):
    """MetricGAN+ spectral-mask enhancement at 16 kHz from the hub checkpoint, in plain torch."""

    name = "metricgan"
    realtime = False

    def __init__(self, settings: Settings) -> None:
        try:
            import torch
        except ImportError as exc:
            raise EngineUnavailable("torch not installed (extra 'metricgan')") from exc
        directory = locate_model(settings.metricgan_source, settings.metricgan_savedir)
        try:
            self.setup = read_hparams(directory / HPARAMS_FILE)
        except (ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
            raise EngineUnavailable(f"unusable {directory / HPARAMS_FILE}: {exc}") from exc
        generator = _build_generator(self.setup)
        try:
            state = torch.load(directory / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
            generator.load_state_dict(state, strict=True)
        except Exception as exc:  # a truncated file or another model's checkpoint
            raise EngineUnavailable(
                f"{directory / CHECKPOINT_FILE} is not a MetricGAN+ generator checkpoint: {exc}"
            ) from exc
        generator.eval()
        self._torch = torch
        self._generator = generator
        self._window = getattr(torch, self.setup.window)(self.setup.win_length)
        self.model = settings.metricgan_source
        log.info("metricgan loaded", extra={"model": self.model, "dir": str(directory)})

    def _spectral_mask(self, x16: np.ndarray) -> np.ndarray:
        torch = self._torch
        s = self.setup
        wav = torch.from_numpy(np.ascontiguousarray(x16, dtype=np.float32))[None, :]
        spec = torch.stft(
            wav,
            s.n_fft,
            s.hop_length,
            s.win_length,
            self._window,
            center=True,
            pad_mode="constant",
            normalized=False,
            onesided=True,
            return_complex=True,
        ).transpose(1, 2)  # (batch, frames, bins), as speechbrain's STFT returns it
        power = spec.real**2 + spec.imag**2
        if s.power < 1:
            power = power + 1e-14  # spectral_magnitude's eps: no NaN gradient at zero
        feats = torch.log1p(power**s.power)
        mask = self._generator(feats)
        magnitude = torch.expm1(mask * feats)
        phase = torch.atan2(spec.imag, spec.real)
        enhanced = torch.polar(magnitude, phase).transpose(1, 2)
        y = torch.istft(
            enhanced,
            s.n_fft,
            s.hop_length,
            s.win_length,
            self._window,
            center=True,
            onesided=True,
            length=wav.shape[1],
        )
        if s.normalize:
            y = y / (y.abs().max(dim=1, keepdim=True).values + 1e-14)
        return np.asarray(y[0].numpy(), dtype=np.float32)

    def enhance(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Enhance one clip; output has the input's rate and length."""
        x16 = resample(samples, sample_rate, MODEL_RATE)
        # torch.stft pads by n_fft/2 each side ("constant"): shorter clips cannot be framed.
        if len(x16) <= self.setup.n_fft // 2:
            x16 = np.pad(x16, (0, self.setup.n_fft // 2 + 1 - len(x16)))
        with self._torch.inference_mode():
            y16 = self._spectral_mask(x16)
        out = resample(y16, MODEL_RATE, sample_rate)
        n = len(samples)
        return out[:n] if len(out) >= n else np.pad(out, (0, n - len(out)))

    def open_stream(self, sample_rate: int) -> DenoiseStream:
        """A whole-clip stream (MetricGAN+ is not a streaming model)."""
        return _ClipStream(self, sample_rate)

    def max_lag_samples(self, sample_rate: int) -> int:
        """Unbounded: output comes only at the end; WebSocket streaming is refused."""
        return 0
