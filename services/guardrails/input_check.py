"""Input scanning: decode hidden payloads, run the rules on every view, pick classifier texts."""

from __future__ import annotations

from dataclasses import dataclass

from services.guardrails.decode import MAX_VIEWS, decoded_views
from services.guardrails.injection import InjectionRules

# Tag characters carrying this much text are hidden writing, never a flag emoji (≤ 5 tags).
_MIN_SMUGGLED = 6


@dataclass(frozen=True)
class Finding:
    """Why an input is blocked: the reason code and where it was found (never the text)."""

    reason: str
    detail: str | None = None


def decode_all(texts: list[str]) -> list[tuple[str, str]]:
    """Decoded payloads of every text, bounded to MAX_VIEWS in all."""
    out: list[tuple[str, str]] = []
    for text in texts:
        out += decoded_views(text)
        if len(out) >= MAX_VIEWS:
            break
    return out[:MAX_VIEWS]


def scan_rules(
    rules: InjectionRules, scanned: str, decoded: list[tuple[str, str]]
) -> Finding | None:
    """Smuggled text, then the rules on the text as sent and on each decoded payload."""
    for enc, text in decoded:
        if enc == "unicode_tags" and len(text.strip()) >= _MIN_SMUGGLED:
            return Finding(
                "prompt_injection:smuggled_text", "text hidden in Unicode tag characters"
            )
    match = rules.check(scanned)
    if match is not None:
        return Finding(f"prompt_injection:{match.category}")
    for enc, text in decoded:
        match = rules.check(text)
        if match is not None:
            return Finding(f"prompt_injection:{match.category}", f"decoded from {enc}")
    return None
