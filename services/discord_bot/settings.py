"""Settings of the Discord bot (env prefix DISCORD_)."""

from __future__ import annotations

from pydantic import (
    AliasChoices,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings
from services.kit.settings import ListenPort


class Settings(ServiceSettings):
    """Everything the Discord bot reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="DISCORD_")

    port: ListenPort = 8300
    """Port of the bot's health/metrics endpoint."""
    bot_token: SecretStr
    """Discord bot token (required; the service refuses to start without it)."""
    orchestrator_url: str = Field(
        "http://orchestrator:8200", validation_alias=AliasChoices("ORCHESTRATOR_URL")
    )
    """Base URL of the orchestrator."""
    orchestrator_api_key: SecretStr | None = None
    """Bearer key for the orchestrator when it enforces ORCHESTRATOR_API_KEYS."""
    session_secret: SecretStr | None = None
    """Secret for users' session ids (HMAC of guild and user id); keeps conversations across bot
    restarts. Empty: a random secret per process."""
    pipeline: str | None = None
    """Pipeline for conversation turns (empty: the orchestrator's active one)."""
    wake_phrase: str | None = None
    """If set, only utterances starting with this phrase reach the LLM."""
    wake_pipeline: str = "transcribe"
    """STT-only orchestrator pipeline used to check the wake phrase before the LLM."""
    command_prefix: str = "!"
    """Prefix of text commands (!join, !leave)."""
    text_commands: bool = False
    """Also accept !join/!leave (needs the privileged Message Content intent)."""
    guild_ids: list[int] = Field(default_factory=list)
    """Guilds to sync slash commands to at once (empty: global sync, slower)."""
    silence_ms: int = Field(800, ge=100, le=5000)
    """Silence that ends an utterance, in milliseconds."""
    vad_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    """Silero speech probability that starts speech."""
    min_utterance_ms: NonNegativeInt = 300
    """Utterances with less speech than this are dropped (coughs)."""
    max_utterance_s: float = Field(20.0, gt=1.0, le=120.0)
    """Longer speech is cut and sent at this length."""
    max_pending_per_user: PositiveInt = 3
    """Utterances queued per user; older ones are dropped beyond this."""
    request_timeout_s: PositiveFloat = 90.0
    """Seconds to wait for one orchestrator turn."""
    retry_attempts: PositiveInt = 4
    """Attempts per turn when the orchestrator is unreachable, 429 or 503."""
    retry_base_s: PositiveFloat = 0.5
    """First retry delay; doubles each attempt."""
    always_post_text: bool = False
    """Also post transcript and reply as text when the reply was played."""
    live: bool = False
    """Talk over live sessions (WS /v1/realtime): replies play as they arrive and speaking over a
    reply stops it. Cannot be combined with a wake phrase."""
    live_silence_pad_ms: int = Field(2000, ge=600, le=10000)
    """Live mode: silence sent after a speaker goes quiet (Discord sends none), so the
    orchestrator's VAD hears the end of the turn; above its silence_duration_ms."""

    @field_validator(
        "pipeline", "wake_phrase", "orchestrator_api_key", "session_secret", mode="before"
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # Compose passes unset variables as empty strings; treat them as "not set".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("bot_token", mode="before")
    @classmethod
    def _token_present(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValueError(
                "DISCORD_BOT_TOKEN is empty: create a bot at https://discord.com/developers, "
                "put its token in .env as DISCORD_BOT_TOKEN and start the 'discord' profile"
            )
        return value

    @model_validator(mode="after")
    def _live_without_wake_phrase(self) -> Settings:
        # A live session runs the LLM on every turn the server's VAD ends: nothing could
        # check the wake phrase before the question reaches the model.
        if self.live and self.wake_phrase:
            raise ValueError("DISCORD_LIVE cannot be combined with DISCORD_WAKE_PHRASE")
        return self


def load_settings() -> Settings:
    """Read settings, turning a missing token into one clear line instead of a traceback."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            field = ".".join(str(p) for p in e["loc"])
            if field == "bot_token" and e["type"] == "missing":
                problems.append(
                    "DISCORD_BOT_TOKEN is not set: create a bot at https://discord.com/developers,"
                    " put its token in .env as DISCORD_BOT_TOKEN and start the 'discord' profile"
                )
            elif field:
                problems.append(f"DISCORD_{field.upper()}: {e['msg']}")
            else:  # a rule across settings names them itself
                problems.append(str(e["msg"]))
        raise SystemExit("discord bot configuration error: " + "; ".join(problems)) from None
