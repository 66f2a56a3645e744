"""Request and response bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr


class TextIn(BaseModel):
    """A text to check; must be a JSON string (numbers or null are rejected with 422)."""

    model_config = ConfigDict(extra="ignore")

    text: StrictStr = Field(description="The text to check.")


class HistoryItem(BaseModel):
    """One earlier message: its text and who the client says wrote it."""

    model_config = ConfigDict(extra="ignore")

    role: StrictStr = Field(max_length=32, description="user, assistant, system, tool, ...")
    text: StrictStr


class InputIn(TextIn):
    """/validate/input: the new text and, optionally, the earlier texts the same request holds."""

    history: list[HistoryItem | StrictStr] = Field(
        default_factory=list,
        description="Earlier client-supplied messages of the request, oldest first (any role, "
        "tool results too; a bare string is a user message). Each is checked, and so are the "
        "conversation as one text and the user's turns as one text, so an injection split "
        "across turns is caught.",
    )

    def history_texts(self) -> list[str]:
        """The earlier texts, in order."""
        return [h if isinstance(h, str) else h.text for h in self.history]

    def user_texts(self) -> list[str]:
        """The earlier user turns and this text: what one person typed, in order."""
        users = [h if isinstance(h, str) else h.text for h in self.history if _is_user(h)]
        return [*users, self.text]


def _is_user(item: HistoryItem | str) -> bool:
    return isinstance(item, str) or item.role == "user"


class OutputIn(TextIn):
    """/validate/output: the reply, and what the caller knows of the request that produced it."""

    input: StrictStr | None = Field(
        None,
        description="The user's text the reply answers: a reply that repeats a quoted phrase "
        "the input ordered it to say, next to a hijack cue, is blocked (target_phrase).",
    )
    canary: StrictStr | None = Field(
        None,
        max_length=200,
        description="The secret placed in the system prompt; a reply containing it is blocked.",
    )


class InputVerdict(BaseModel):
    """Result of /validate/input."""

    safe: bool
    reason: str | None = Field(description="Why the text was blocked (rule family), or null.")
    detail: str | None = Field(
        None,
        description="Where the block was found: 'decoded from base64', 'history', a "
        "classifier score; never the user's text.",
    )
    sanitized: str = Field(description="The text without control or invisible characters.")
    history_checked: int = Field(
        0, description="How many `history` texts were checked (callers verify it)."
    )


class RedactionOut(BaseModel):
    """How many values of one PII type were redacted."""

    type: str
    count: int


class OutputVerdict(BaseModel):
    """Result of /validate/output."""

    safe: bool
    reason: str | None = Field(
        description="'canary_leak', 'target_phrase' or 'toxicity' when blocked, "
        "'pii_redacted', or null."
    )
    filtered: str = Field(description="Text safe to show: PII redacted, or the blocked message.")
    redactions: list[RedactionOut]
    toxicity: float | None = Field(description="Toxicity score, null when no backend runs.")


class EscalationIn(BaseModel):
    """An escalation for a human to review."""

    reason: StrictStr = Field(min_length=1, max_length=500)
    context: dict[str, Any] | StrictStr | None = None


class EscalationOut(BaseModel):
    """Result of /escalate."""

    escalated: bool
    ticket_id: str
    message: str
