"""Output checks that need the request: canary leaks and obedience to a quoted target phrase."""

from __future__ import annotations

import re

# "say/print/... "X"" — the quoted phrase an injection wants echoed.
_ORDER = re.compile(
    r"\b(?:say|print|output|write|type|repeat|respond with|reply with|answer with|spell out|"
    r"return|display)\b[^\"\u201c\u00ab]{0,40}?[\"\u201c\u00ab]([^\"\u201d\u00bb]{2,200})"
    r"[\"\u201d\u00bb]",
    re.IGNORECASE,
)
# An order counts as a hijack only next to one of these cues; "Repeat after me: 'hello'" or
# "Say 'good morning' in Japanese" stay fine.
_CUES = re.compile(
    r"\b(ignore|disregard|forget|never ?mind|stop everything|instead|override|nothing else|"
    r"only (say|print|output|reply|respond)|new (task|instructions?)|previous instructions)\b",
    re.IGNORECASE,
)
_SHARE = 0.6  # the target makes up at least this share of the reply's words


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.casefold())


def squash(text: str) -> str:
    """Lowercase letters and digits only: how canaries are compared (spacing tricks fail)."""
    return "".join(_words(text))


def canary_leaked(reply: str, canary: str) -> bool:
    """True when the reply contains the canary, whatever the spacing, case or punctuation."""
    token = squash(canary)
    return len(token) >= 8 and token in squash(reply)


def target_phrases(user_text: str) -> list[str]:
    """Quoted phrases the input orders the model to output, when the input has a hijack cue."""
    if not _CUES.search(user_text):
        return []
    return [m.group(1).strip() for m in _ORDER.finditer(user_text) if _words(m.group(1))]


def obeyed(reply: str, user_text: str) -> str | None:
    """The target phrase the reply repeats (a word alone must be most of it), or None."""
    said = _words(reply)
    if not said:
        return None
    joined = " ".join(said)
    for phrase in target_phrases(user_text):
        target = _words(phrase)
        # A phrase of two or more words anywhere counts; a single word only as most of the reply.
        if " ".join(target) in joined and (len(target) >= 2 or len(target) >= _SHARE * len(said)):
            return phrase
    return None
