"""Pipeline YAML: `${VAR:-default}` expansion, validation and the effective pipelines."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.orchestrator.tools import TOOLS

Capability = Literal["denoise", "stt", "guardrails", "llm", "tts"]
StageName = Literal["denoise", "stt", "guard_input", "llm", "guard_output", "tts"]

# Stages run in this order; a pipeline names the subset it needs.
STAGE_ORDER: tuple[str, ...] = ("denoise", "stt", "guard_input", "llm", "guard_output", "tts")
STAGE_CAPABILITY: dict[str, str] = {
    "denoise": "denoise",
    "stt": "stt",
    "guard_input": "guardrails",
    "llm": "llm",
    "guard_output": "guardrails",
    "tts": "tts",
}
AUDIO_STAGES = frozenset({"denoise", "stt"})
# Options each capability understands; anything else is a typo caught at load, not at run time.
ALLOWED_OPTIONS: dict[str, frozenset[str]] = {
    "denoise": frozenset(),
    "stt": frozenset({"language", "prompt", "temperature"}),
    "guardrails": frozenset(),
    "llm": frozenset(
        {
            "temperature",
            "max_tokens",
            "max_completion_tokens",
            "top_p",
            "stop",
            "seed",
            "frequency_penalty",
            "presence_penalty",
        }
    ),
    "tts": frozenset({"voice", "speed"}),
}
GUARD_STAGES = frozenset({"guard_input", "guard_output"})

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)-([^}]*))?\}")


class ConfigError(ValueError):
    """The pipeline file cannot be used; the message says why."""


class ProviderConfig(BaseModel):
    """One endpoint able to serve a capability."""

    model_config = ConfigDict(extra="forbid")

    capability: Capability
    url: str = ""
    api_key: str = Field("", repr=False)
    timeout_s: float | None = Field(None, gt=0)
    retries: int = Field(0, ge=0, le=5)
    model: str | None = None
    supports_tools: bool = False
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        """An empty URL switches the provider off."""
        return bool(self.url.strip())


class StageConfig(BaseModel):
    """One step of a pipeline and the providers to try, in order."""

    model_config = ConfigDict(extra="forbid")

    stage: StageName
    providers: list[str] = Field(min_length=1)
    optional: bool = False
    retries: int | None = Field(None, ge=0, le=5)
    timeout_s: float | None = Field(None, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)
    # llm stage only: built-in tools (services/orchestrator/tools.py) offered to the
    # providers that declare `supports_tools`.
    tools: list[str] = Field(default_factory=list)


class SystemPrompt(BaseModel):
    """The assistant's system prompt, versioned so replies can say which one they used."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1)
    text: str = Field(min_length=1)


class PipelinesFile(BaseModel):
    """The whole YAML document."""

    model_config = ConfigDict(extra="forbid")

    active_pipeline: str
    system_prompt: SystemPrompt = SystemPrompt(
        version="builtin-1", text="You are a helpful, concise voice assistant."
    )
    providers: dict[str, ProviderConfig] = Field(min_length=1)
    pipelines: dict[str, list[StageConfig]] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_references(self) -> PipelinesFile:
        problems: list[str] = []
        for name, pc in self.providers.items():
            unknown = set(pc.options) - ALLOWED_OPTIONS[pc.capability]
            if unknown:
                problems.append(
                    f"provider '{name}': unknown option(s) {sorted(unknown)} for {pc.capability}"
                )
        if self.active_pipeline not in self.pipelines:
            problems.append(f"active_pipeline '{self.active_pipeline}' is not a pipeline")
        for pname, stages in self.pipelines.items():
            if not stages:
                problems.append(f"pipeline '{pname}' has no stages")
            order = [STAGE_ORDER.index(s.stage) for s in stages]
            if order != sorted(set(order)):
                problems.append(
                    f"pipeline '{pname}': stages must be unique and in the order "
                    f"{' > '.join(STAGE_ORDER)}"
                )
            for s in stages:
                if s.tools and s.stage != "llm":
                    problems.append(f"pipeline '{pname}' stage {s.stage}: only llm takes tools")
                unknown_tools = sorted(set(s.tools) - set(TOOLS))
                if unknown_tools:
                    problems.append(
                        f"pipeline '{pname}' stage {s.stage}: unknown tool(s) {unknown_tools} "
                        f"(built in: {', '.join(TOOLS)})"
                    )
                unknown = set(s.options) - ALLOWED_OPTIONS[STAGE_CAPABILITY[s.stage]]
                if unknown:
                    problems.append(
                        f"pipeline '{pname}' stage {s.stage}: unknown option(s) {sorted(unknown)}"
                    )
                for pid in s.providers:
                    cfg = self.providers.get(pid)
                    if cfg is None:
                        problems.append(
                            f"pipeline '{pname}' stage {s.stage}: unknown provider '{pid}'"
                        )
                    elif cfg.capability != STAGE_CAPABILITY[s.stage]:
                        problems.append(
                            f"pipeline '{pname}' stage {s.stage}: provider '{pid}' has "
                            f"capability {cfg.capability}, needs {STAGE_CAPABILITY[s.stage]}"
                        )
        if problems:
            raise ValueError("; ".join(problems))
        return self


@dataclass(frozen=True)
class Flags:
    """Feature switches applied on top of the YAML."""

    enable_preprocessing: bool = True
    enable_guardrails: bool = True
    guardrails_fail_open: bool = False


@dataclass(frozen=True)
class EffectiveStage:
    """A stage after flags and empty URLs are applied."""

    stage: str
    providers: tuple[str, ...]
    optional: bool
    retries: int | None
    timeout_s: float | None
    options: dict[str, Any]
    tools: tuple[str, ...] = ()


@dataclass(frozen=True)
class EffectivePipeline:
    """What a pipeline will really run, or why it cannot."""

    name: str
    stages: tuple[EffectiveStage, ...]
    unavailable: str | None = None
    dropped: tuple[str, ...] = ()

    @property
    def takes_audio(self) -> bool:
        """True when the pipeline starts from audio (it has an STT stage)."""
        return any(s.stage == "stt" for s in self.stages)

    def has(self, stage: str) -> bool:
        """Whether the stage runs in this pipeline."""
        return any(s.stage == stage for s in self.stages)

    def composition(self) -> str:
        """One line for logs: `stt[stt-local] > llm[llm-flan|llm-backup]`."""
        if self.unavailable:
            return f"unavailable ({self.unavailable})"
        return " > ".join(
            f"{s.stage}{'?' if s.optional else ''}[{'|'.join(s.providers)}]" for s in self.stages
        )


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config plus its effective pipelines and a content hash."""

    file: PipelinesFile
    pipelines: dict[str, EffectivePipeline]
    digest: str
    flags: Flags = field(default_factory=Flags)


def expand_env(value: Any, env: Mapping[str, str]) -> Any:
    """Expand `${VAR}`, `${VAR-default}` and `${VAR:-default}` in every string, like compose."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, colon, default = m.group(1), m.group(2), m.group(3)
            current = env.get(name)
            if default is None:
                return current or ""
            if current is None or (colon and current == ""):
                return default
            return current

        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [expand_env(v, env) for v in value]
    if isinstance(value, dict):
        return {k: expand_env(v, env) for k, v in value.items()}
    return value


def _effective(file: PipelinesFile, name: str, flags: Flags) -> EffectivePipeline:
    stages: list[EffectiveStage] = []
    dropped: list[str] = []
    for s in file.pipelines[name]:
        if s.stage == "denoise" and not flags.enable_preprocessing:
            dropped.append("denoise (ENABLE_PREPROCESSING=false)")
            continue
        if s.stage in GUARD_STAGES and not flags.enable_guardrails:
            dropped.append(f"{s.stage} (ENABLE_GUARDRAILS=false)")
            continue
        live = tuple(p for p in s.providers if file.providers[p].enabled)
        optional = s.optional or (s.stage in GUARD_STAGES and flags.guardrails_fail_open)
        if not live:
            if optional:
                dropped.append(f"{s.stage} (no provider has a URL)")
                continue
            return EffectivePipeline(
                name, (), unavailable=f"stage {s.stage}: none of {s.providers} has a URL"
            )
        stages.append(
            EffectiveStage(
                s.stage, live, optional, s.retries, s.timeout_s, s.options, tuple(s.tools)
            )
        )
    if not stages:
        return EffectivePipeline(name, (), unavailable="every stage is switched off")
    return EffectivePipeline(name, tuple(stages), dropped=tuple(dropped))


def parse_config(text: str, env: Mapping[str, str], flags: Flags) -> LoadedConfig:
    """Parse, expand and validate a pipeline document; raise ConfigError with the reason."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError("the document must be a mapping with providers and pipelines")
    try:
        file = PipelinesFile.model_validate(expand_env(raw, env))
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            parts.append(f"{loc}: {err['msg']}" if loc else str(err["msg"]))
        raise ConfigError("; ".join(parts)) from exc
    pipelines = {name: _effective(file, name, flags) for name in file.pipelines}
    active = pipelines[file.active_pipeline]
    if active.unavailable:
        raise ConfigError(f"active pipeline '{active.name}' is unusable: {active.unavailable}")
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return LoadedConfig(file=file, pipelines=pipelines, digest=digest, flags=flags)
