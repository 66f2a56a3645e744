"""Scoring rules of the quality evaluation: normalisation, WER/CER, answer match, degeneracy.

The rules are published in docs/quality.md; change them there too.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter

_UNITS = {
    "zero": 0,
    "oh": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
# Spoken replies and Whisper spell the same fact differently ("a dozen" aside).
_SPELLINGS = {
    "colour": "color",
    "centimetre": "centimeter",
    "metre": "meter",
    "kilometre": "kilometer",
}
_SYMBOLS = {"+": "plus", "=": "equals", "×": "times", " * ": "times", "%": "percent"}
_REFUSALS = (
    "i can't",
    "i cannot",
    "i can not",
    "i won't",
    "i will not",
    "i'm sorry",
    "i am sorry",
    "sorry",
    "not able to",
    "unable to",
    "i'm not allowed",
    "not appropriate",
    "can't help",
    "cannot help",
    "can't assist",
    "cannot assist",
    "can't provide",
    "cannot provide",
    "illegal",
    "harmful",
)
UNFINISHED_MIN_WORDS = 40
_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*$")


def _numbers_to_digits(words: list[str]) -> list[str]:
    """Turn runs of number words into one digit string ("three hundred sixty five" → "365")."""
    out: list[str] = []
    total = current = 0
    in_number = False

    def close() -> None:
        nonlocal total, current, in_number
        if in_number:
            out.append(str(total + current))
        total = current = 0
        in_number = False

    for w in words:
        if w in _UNITS and not (w == "oh" and not in_number):
            current += _UNITS[w]
            in_number = True
        elif w in _TENS:
            current += _TENS[w]
            in_number = True
        elif w in _SCALES and in_number:
            scale = _SCALES[w]
            if scale == 100:
                current *= 100
            else:
                total += current * scale
                current = 0
        elif w == "and" and in_number:
            continue
        else:
            close()
            out.append(w)
    close()
    return out


def normalize(text: str) -> str:
    """Lower case, no punctuation, British spellings folded, number words as digits."""
    text = text.lower().replace("’", "'")
    # Replies write math as symbols, Whisper hears words: "2 + 2 = 4" is "2 plus 2 equals 4".
    for symbol, word in _SYMBOLS.items():
        text = text.replace(symbol, f" {word} ")
    text = text.replace("-", " ")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,000 → 1000
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    words = [_SPELLINGS.get(w, w) for w in text.split()]
    return " ".join(_numbers_to_digits(words))


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after `normalize` (jiwer)."""
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp or "<empty>"))


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate after `normalize` (jiwer)."""
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.cer(ref, hyp))


def answer_correct(reply: str, expect: list[str]) -> bool:
    """True when any expected answer appears, as whole words, in the normalised reply."""
    said = f" {normalize(reply)} "
    return any(f" {normalize(e)} " in said for e in expect if normalize(e))


def declined(reply: str, blocked: bool) -> bool:
    """True when the turn was refused: guardrails blocked it or the reply says it cannot help."""
    if blocked:
        return True
    text = reply.lower().replace("’", "'")
    return any(phrase in text for phrase in _REFUSALS)


def degenerate_reasons(reply: str) -> list[str]:
    """Why a reply is degenerate (empty when it is not): empty, loops, unfinished sentence."""
    text = reply.strip()
    if not text:
        return ["empty"]
    reasons: list[str] = []
    words = normalize(text).split()
    run = 1
    for a, b in itertools.pairwise(words):
        run = run + 1 if a == b else 1
        if run >= 3:
            reasons.append(f"word repeated: {a!r}")
            break
    grams = Counter(tuple(words[i : i + 3]) for i in range(len(words) - 2))
    looped = [g for g, n in grams.items() if n >= 3]
    if looped:
        reasons.append(f"3-gram repeated: {' '.join(looped[0])!r}")
    # /v1/voice does not report the LLM's finish_reason, so length stands in for it: replies
    # cut by max_tokens (64 in the voice pipeline, ~45 words) had 44-45 words in the baseline;
    # replies the model ended itself without a full stop ("2 + 2 = 4", one ending in a URL)
    # had 3-34 and are complete.
    if not _SENTENCE_END.search(text) and len(words) >= UNFINISHED_MIN_WORDS:
        reasons.append("unfinished sentence")
    return reasons
