"""Orchestrator settings (env prefix ORCH_; cross-service names unprefixed)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    AliasChoices,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    field_validator,
)
from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings
from services.kit.settings import ListenPort, WyomingPort, WyomingSettings


class Settings(ServiceSettings, WyomingSettings):
    """Everything the orchestrator reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="ORCH_")

    port: ListenPort = 8200
    """Listen port."""
    pipelines_path: str = "config/pipelines.yaml"
    """Pipeline YAML (relative to the working directory)."""
    reload_poll_s: NonNegativeFloat = 1.0
    """How often the YAML's mtime is checked for hot reload; 0 disables."""
    enable_preprocessing: bool = Field(
        True, validation_alias=AliasChoices("ENABLE_PREPROCESSING", "ORCH_ENABLE_PREPROCESSING")
    )
    """Keep `denoise` stages; false drops them from every pipeline."""
    denoise_min_snr_db: float | None = -10.0
    """Denoise only audio whose SNR can be estimated (Silero speech vs non-speech windows) and is
    at least this many dB; otherwise (no estimate: babble heard as speech throughout, or no
    pause to measure the noise in) stt gets the raw audio. -10 = every clip with an estimate
    (the STT sweep found no SNR where denoising measurable noise hurt). Unset = always denoise."""
    enable_guardrails: bool = Field(
        True, validation_alias=AliasChoices("ENABLE_GUARDRAILS", "ORCH_ENABLE_GUARDRAILS")
    )
    """Keep `guard_input`/`guard_output` stages; false drops them."""
    guardrails_fail_mode: Literal["closed", "open"] = "closed"
    """When every guardrails provider is down: closed fails the run, open skips."""
    api_keys: str = Field(
        "", validation_alias=AliasChoices("ORCHESTRATOR_API_KEYS", "ORCH_API_KEYS")
    )
    """Comma-separated client keys; when set, every API route needs a Bearer key."""
    admin_open: bool = False
    """Development only: allow /admin/* without a key when neither ADMIN_API_KEYS nor
    ORCHESTRATOR_API_KEYS is set (ignored once either is)."""
    redis_url: str = Field("", validation_alias=AliasChoices("REDIS_URL", "ORCH_REDIS_URL"))
    """Session history in Redis when set; in-memory otherwise."""
    session_ttl_s: PositiveFloat = 3600.0
    """Idle session history lifetime."""
    session_max_turns: NonNegativeInt = 10
    """User+assistant turn pairs kept per session (older ones dropped)."""
    max_sessions: PositiveInt = 10_000
    """In-memory store: most sessions kept (least recent evicted)."""
    max_tool_rounds: int = Field(3, ge=0, le=10)
    """Rounds of tool calls the LLM may make in one turn before it must answer."""
    max_text_chars: PositiveInt = 4000
    """Longest transcript/message accepted."""
    max_history_messages: NonNegativeInt = 64
    """Chat facade: most earlier messages a request may carry (400 beyond); each is checked by the
    input guard."""
    max_history_chars: NonNegativeInt = 16_000
    """Chat facade: most characters of earlier messages a request may carry (400 beyond); keeps the
    one input-guard call per turn bounded."""
    max_reply_json_bytes: int = Field(1_048_576, ge=1024)
    """Largest JSON reply read from a provider (chat, transcription, verdict); a bigger one is a
    failed call and the next provider is tried."""
    max_reply_audio_bytes: int = Field(33_554_432, ge=1024)
    """Largest audio reply read from a provider (denoise, speech); a bigger one is a failed call
    and the next provider is tried."""
    max_audio_bytes: PositiveInt = 10_000_000
    """Largest audio upload accepted by /v1/voice (413 beyond)."""
    breaker_failures: PositiveInt = 3
    """Consecutive transient failures that open a provider's circuit."""
    breaker_cooldown_s: PositiveFloat = 30.0
    """How long an open circuit skips its provider before a probe."""
    balance_replicas: bool = True
    """Spread calls over every address a provider's host resolves to (replicas behind Swarm dnsrr,
    compose --scale, a headless Service); plain http:// names only."""
    replica_refresh_s: PositiveFloat = 5.0
    """How often a balanced host is resolved again (replicas join/leave)."""
    replica_failures: PositiveInt = 1
    """Consecutive failures that take one replica out for a cool-down."""
    replica_cooldown_s: PositiveFloat = 5.0
    """How long a failed replica is skipped before a probe call."""
    replica_connect_timeout_s: PositiveFloat = 2.0
    """Connect timeout to one replica; past it the call goes to a sibling (a removed container's
    address may never refuse)."""
    default_timeout_s: PositiveFloat = 30.0
    """Provider timeout when the YAML gives none."""
    llm_client: Literal["http", "langchain"] = "http"
    """How the LLM stage calls its providers: `http` posts the OpenAI chat format over the shared
    client; `langchain` goes through LangChain's ChatOpenAI (callbacks, tracing; ~4 ms more CPU
    per turn)."""
    chat_pipeline: str = "text"
    """Pipeline used by /v1/chat/completions when `model` names no pipeline."""
    wyoming_enabled: bool = False
    """Serve the pipelines over Wyoming (Home Assistant). Off by default: Wyoming carries no API
    key, so enable it only where ORCH_WYOMING_ALLOW fences it in."""
    wyoming_port: WyomingPort = 10700
    """Wyoming TCP port; 0 = any free port."""
    wyoming_asr_pipeline: str = "transcribe"
    """Pipeline behind Wyoming asr."""
    wyoming_tts_pipeline: str = "speak"
    """Pipeline behind Wyoming tts."""
    wyoming_handle_pipeline: str = "text"
    """Pipeline behind Wyoming handle."""
    wyoming_languages: str = "en"
    """Languages advertised for asr, tts and handle (comma-separated)."""
    refusal_message: str = "Sorry, I can't help with that request."
    """Reply sent when guardrails block the input or the output."""
    canary_key: SecretStr = SecretStr("")
    """Key the per-session prompt canaries are derived from (HMAC of the session); empty = a
    random key per process. Set it to get the same prompt, so the same greedy answer, across
    restarts and replicas."""
    # Live voice sessions (WS /v1/realtime, docs/services/realtime.md).
    realtime_pipeline: str = "voice"
    """Pipeline behind /v1/realtime when `model` names no pipeline."""
    realtime_max_sessions: NonNegativeInt = 16
    """Most live sessions at once; one more gets an error and is closed."""
    realtime_idle_timeout_s: PositiveFloat = 300.0
    """A session with no client event for this long is closed."""
    realtime_max_append_bytes: int = Field(1_048_576, ge=1024)
    """Largest decoded audio in one input_audio_buffer.append (error beyond)."""
    realtime_max_buffer_s: PositiveFloat = 60.0
    """Most uncommitted input audio (manual turns); appends beyond get an error."""
    realtime_max_utterance_s: PositiveFloat = 30.0
    """Server VAD: an utterance this long is committed at once."""
    realtime_min_speech_ms: int = Field(300, ge=32)
    """Server VAD: speech shorter than this (a cough, 'mm-hm') neither starts a turn nor interrupts
    a reply."""
    realtime_speculate_ms: NonNegativeInt = 200
    """Server VAD: start the turn (transcription, reply) after this much silence and hold its
    output until the silence reaches the turn's `silence_duration_ms`; speech resuming before
    then drops it. 0, or not below the silence duration: start only at the end."""
    realtime_vad: Literal["silero", "energy"] = "silero"
    """Server VAD model: Silero v6 (ONNX, bundled with faster-whisper) or an energy detector (no
    model; weaker in noise, docs/bench/vad.md)."""
    realtime_output_chunk_ms: int = Field(100, ge=20, le=1000)
    """Audio per response.output_audio.delta event."""
    realtime_max_pending_chunks: PositiveInt = 50
    """Audio deltas queued for a slow reader before generation waits (backpressure)."""
    realtime_send_timeout_s: PositiveFloat = 20.0
    """A client that takes longer than this to take one event is closed."""
    realtime_stream_denoise: bool = True
    """Server VAD sessions stream their input through the denoise stage's preprocessor
    (WS /denoise/ws) while the user speaks; false = the whole utterance is posted at its end."""
    realtime_denoise_buffer_s: PositiveFloat = 40.0
    """Denoised input kept per session for its utterances (older spans fall back to the stage)."""
    realtime_denoise_wait_s: PositiveFloat = 0.5
    """Longest a turn waits for its streamed span before it uses the denoise stage instead."""

    @field_validator("denoise_min_snr_db", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # ORCH_DENOISE_MIN_SNR_DB= (empty) switches the gate off, as documented.
        return None if isinstance(value, str) and not value.strip() else value
