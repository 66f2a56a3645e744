"""Map OpenAI voice names onto the voices an engine has."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from services.kit import ApiError

# OpenAI's voice names, in a fixed order so the mapping onto local voices is stable.
OPENAI_VOICES: tuple[str, ...] = (
    "alloy",
    "echo",
    "fable",
    "onyx",
    "nova",
    "shimmer",
    "ash",
    "ballad",
    "coral",
    "sage",
    "verse",
    "marin",
    "cedar",
)


def openai_voice_map(
    local: Sequence[str], overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Each OpenAI voice name → a local voice: overrides first, then round-robin over `local`."""
    if not local:
        return {}
    ordered = list(local)
    mapping = {name: ordered[i % len(ordered)] for i, name in enumerate(OPENAI_VOICES)}
    for name, target in (overrides or {}).items():
        if target in ordered:
            mapping[name] = target
    return mapping


def resolve_voice(requested: str, local: Sequence[str], mapping: Mapping[str, str]) -> str:
    """The local voice for a requested name; 400 if it is neither local nor mapped."""
    if requested in local:
        return requested
    key = requested.lower()
    if key in mapping:
        return mapping[key]
    known = sorted(set(local) | set(mapping))
    raise ApiError(
        400,
        f"unknown voice {requested!r}; available: {', '.join(known)}",
        param="voice",
        code="unknown_voice",
    )
