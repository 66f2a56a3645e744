"""Split text into sentence-sized pieces so synthesis can stream and stay bounded."""

from __future__ import annotations

import re

# End of sentence: . ! ? … (optionally closing quotes/brackets) followed by whitespace.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")


def _hard_wrap(text: str, max_chars: int) -> list[str]:
    # Last resort for run-on text: break at spaces, or mid-word if a word alone is too long.
    pieces: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > max_chars:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:max_chars])
            word = word[max_chars:]
        candidate = f"{current} {word}" if current else word
        if len(candidate) > max_chars:
            pieces.append(current)
            current = word
        else:
            current = candidate
    if current:
        pieces.append(current)
    return pieces


def split_sentences(text: str, max_chars: int = 400) -> list[str]:
    """Sentences of `text`, each at most `max_chars` (long ones split at clauses, then words)."""
    out: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        sentence = " ".join(sentence.split())
        if not sentence:
            continue
        if len(sentence) <= max_chars:
            out.append(sentence)
            continue
        current = ""
        for clause in _CLAUSE_END.split(sentence):
            candidate = f"{current} {clause}" if current else clause
            if len(candidate) <= max_chars:
                current = candidate
                continue
            if current:
                out.append(current)
            if len(clause) <= max_chars:
                current = clause
            else:
                out.extend(_hard_wrap(clause, max_chars))
                current = ""
        if current:
            out.append(current)
    return out
