"""Orchestrator settings (env prefix ORCH_; cross-service names unprefixed)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings


class Settings(ServiceSettings):
    """Everything the orchestrator reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="ORCH_", extra="ignore", populate_by_name=True)

    port: int = Field(
        8200, validation_alias=AliasChoices("PORT", "ORCH_PORT"), description="Listen port."
    )
    pipelines_path: str = Field(
        "config/pipelines.yaml", description="Pipeline YAML (relative to the working directory)."
    )
    reload_poll_s: float = Field(
        1.0, ge=0, description="How often the YAML's mtime is checked for hot reload; 0 disables."
    )
    enable_preprocessing: bool = Field(
        True,
        validation_alias=AliasChoices("ENABLE_PREPROCESSING", "ORCH_ENABLE_PREPROCESSING"),
        description="Keep `denoise` stages; false drops them from every pipeline.",
    )
    enable_guardrails: bool = Field(
        True,
        validation_alias=AliasChoices("ENABLE_GUARDRAILS", "ORCH_ENABLE_GUARDRAILS"),
        description="Keep `guard_input`/`guard_output` stages; false drops them.",
    )
    guardrails_fail_mode: Literal["closed", "open"] = Field(
        "closed",
        description="When every guardrails provider is down: closed fails the run, open skips.",
    )
    api_keys: str = Field(
        "",
        validation_alias=AliasChoices("ORCHESTRATOR_API_KEYS", "ORCH_API_KEYS"),
        description="Comma-separated client keys; when set, every API route needs a Bearer key.",
    )
    admin_open: bool = Field(
        False,
        description="Development only: allow /admin/* without a key when neither "
        "ADMIN_API_KEYS nor ORCHESTRATOR_API_KEYS is set (ignored once either is).",
    )
    redis_url: str = Field(
        "",
        validation_alias=AliasChoices("REDIS_URL", "ORCH_REDIS_URL"),
        description="Session history in Redis when set; in-memory otherwise.",
    )
    session_ttl_s: float = Field(3600.0, gt=0, description="Idle session history lifetime.")
    session_max_turns: int = Field(
        10, ge=0, description="User+assistant turn pairs kept per session (older ones dropped)."
    )
    max_sessions: int = Field(
        10_000, ge=1, description="In-memory store: most sessions kept (least recent evicted)."
    )
    max_tool_rounds: int = Field(
        3,
        ge=0,
        le=10,
        description="Rounds of tool calls the LLM may make in one turn before it must answer.",
    )
    max_text_chars: int = Field(4000, ge=1, description="Longest transcript/message accepted.")
    max_history_messages: int = Field(
        64,
        ge=0,
        description="Chat facade: most earlier messages a request may carry (400 beyond); "
        "each is checked by the input guard.",
    )
    max_history_chars: int = Field(
        16_000,
        ge=0,
        description="Chat facade: most characters of earlier messages a request may carry "
        "(400 beyond); keeps the one input-guard call per turn bounded.",
    )
    max_reply_json_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Largest JSON reply read from a provider (chat, transcription, verdict); "
        "a bigger one is a failed call and the next provider is tried.",
    )
    max_reply_audio_bytes: int = Field(
        33_554_432,
        ge=1024,
        description="Largest audio reply read from a provider (denoise, speech); a bigger one "
        "is a failed call and the next provider is tried.",
    )
    max_audio_bytes: int = Field(
        10_000_000, ge=1, description="Largest audio upload accepted by /v1/voice (413 beyond)."
    )
    breaker_failures: int = Field(
        3, ge=1, description="Consecutive transient failures that open a provider's circuit."
    )
    breaker_cooldown_s: float = Field(
        30.0, gt=0, description="How long an open circuit skips its provider before a probe."
    )
    balance_replicas: bool = Field(
        True,
        description="Spread calls over every address a provider's host resolves to (replicas "
        "behind Swarm dnsrr, compose --scale, a headless Service); plain http:// names only.",
    )
    replica_refresh_s: float = Field(
        5.0, gt=0, description="How often a balanced host is resolved again (replicas join/leave)."
    )
    replica_failures: int = Field(
        1, ge=1, description="Consecutive failures that take one replica out for a cool-down."
    )
    replica_cooldown_s: float = Field(
        5.0, gt=0, description="How long a failed replica is skipped before a probe call."
    )
    replica_connect_timeout_s: float = Field(
        2.0,
        gt=0,
        description="Connect timeout to one replica; past it the call goes to a sibling "
        "(a removed container's address may never refuse).",
    )
    default_timeout_s: float = Field(
        30.0, gt=0, description="Provider timeout when the YAML gives none."
    )
    llm_client: Literal["http", "langchain"] = Field(
        "http",
        description="How the LLM stage calls its providers: `http` posts the OpenAI chat "
        "format over the shared client; `langchain` goes through LangChain's ChatOpenAI "
        "(callbacks, tracing; ~4 ms more CPU per voice turn, docs/benchmarks.md).",
    )
    chat_pipeline: str = Field(
        "text",
        description="Pipeline used by /v1/chat/completions when `model` names no pipeline.",
    )
    wyoming_enabled: bool = Field(
        False,
        description="Serve the pipelines over Wyoming (Home Assistant). Off by default: Wyoming "
        "carries no API key, so enable it only where ORCH_WYOMING_ALLOW fences it in.",
    )
    wyoming_host: str = Field("0.0.0.0", description="Bind address of the Wyoming endpoint.")
    wyoming_port: int = Field(
        10700,
        ge=0,
        validation_alias=AliasChoices("WYOMING_PORT", "ORCH_WYOMING_PORT"),
        description="Wyoming TCP port; 0 = any free port.",
    )
    wyoming_allow: str = Field(
        "private",
        description="Comma-separated client networks (CIDR); `private` = loopback and private "
        "ranges (a home LAN, the compose network); empty = everyone.",
    )
    wyoming_asr_pipeline: str = Field("transcribe", description="Pipeline behind Wyoming asr.")
    wyoming_tts_pipeline: str = Field("speak", description="Pipeline behind Wyoming tts.")
    wyoming_handle_pipeline: str = Field("text", description="Pipeline behind Wyoming handle.")
    wyoming_languages: str = Field(
        "en", description="Languages advertised for asr, tts and handle (comma-separated)."
    )
    refusal_message: str = Field(
        "Sorry, I can't help with that request.",
        description="Reply sent when guardrails block the input or the output.",
    )
    # Live voice sessions (WS /v1/realtime, docs/services/realtime.md).
    realtime_pipeline: str = Field(
        "voice",
        description="Pipeline behind /v1/realtime when `model` names no pipeline.",
    )
    realtime_max_sessions: int = Field(
        16, ge=0, description="Most live sessions at once; one more gets an error and is closed."
    )
    realtime_idle_timeout_s: float = Field(
        300.0, gt=0, description="A session with no client event for this long is closed."
    )
    realtime_max_append_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Largest decoded audio in one input_audio_buffer.append (error beyond).",
    )
    realtime_max_buffer_s: float = Field(
        60.0,
        gt=0,
        description="Most uncommitted input audio (manual turns); appends beyond get an error.",
    )
    realtime_max_utterance_s: float = Field(
        30.0, gt=0, description="Server VAD: an utterance this long is committed at once."
    )
    realtime_min_speech_ms: int = Field(
        300,
        ge=32,
        description="Server VAD: speech shorter than this (a cough, 'mm-hm') neither starts a "
        "turn nor interrupts a reply.",
    )
    realtime_vad: Literal["silero", "energy"] = Field(
        "silero",
        description="Server VAD model: Silero v6 (ONNX, bundled with faster-whisper) or an "
        "energy detector (no model; weaker in noise, docs/bench/vad.md).",
    )
    realtime_output_chunk_ms: int = Field(
        100, ge=20, le=1000, description="Audio per response.output_audio.delta event."
    )
    realtime_max_pending_chunks: int = Field(
        50,
        ge=1,
        description="Audio deltas queued for a slow reader before generation waits (backpressure).",
    )
    realtime_send_timeout_s: float = Field(
        20.0, gt=0, description="A client that takes longer than this to take one event is closed."
    )
