"""Text normalisation that undoes common obfuscation before injection patterns run."""

from __future__ import annotations

import re
import unicodedata

# Look-alike letters attackers swap in so "ignore" no longer matches; applied after casefold.
# fmt: off
_HOMOGLYPHS = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d",
    "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ү": "y", "ɡ": "g", "ь": "b", "п": "n", "г": "r",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ς": "s", "σ": "o", "μ": "u", "ζ": "z",
    # Latin look-alikes outside ASCII that NFKC leaves alone
    "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŧ": "t", "ƅ": "b", "ɑ": "a", "ɩ": "i",
}
_HOMOGLYPH_TABLE = str.maketrans(_HOMOGLYPHS)
# Digits and symbols read as letters inside words ("1gn0re", "pr3v10us", "@ll").
_LEET_I = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t",
                         "8": "b", "@": "a", "$": "s", "9": "g"})
_LEET_L = str.maketrans({"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t",
                         "8": "b", "@": "a", "$": "s", "9": "g"})
# fmt: on
_LEET_CHARS = set("0134578@$9")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
# A run of at least three single characters separated by spaces: "i g n o r e".
_SPACED_RUN = re.compile(r"(?<![a-z0-9])(?:[a-z0-9] ){2,}[a-z0-9](?![a-z0-9])")


def strip_invisible(text: str) -> str:
    """Drop control characters (except tab/newline) and invisible format characters."""
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "\n\t":
            out.append(ch)
        elif ch == "\r":
            continue
        elif cat in ("Cc", "Cf", "Cs", "Co", "Cn"):
            # Cf holds zero-width joiners and bidi overrides, which hide or reorder text.
            continue
        else:
            out.append(ch)
    return "".join(out)


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", strip_invisible(text)).casefold()
    text = text.translate(_HOMOGLYPH_TABLE)
    # Strip accents so "ìgnörè" reads as "ignore".
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


def _deleet(text: str, table: dict[int, str]) -> str:
    words = []
    for word in text.split():
        # Numbers get rewritten too ("45" for "as"): views are only matched, never shown, and
        # the patterns are phrases, so "2024" reading as "zoza" cannot trigger anything.
        if any(c in _LEET_CHARS for c in word):
            word = word.translate(table)
        words.append(word)
    return " ".join(words)


def _spaced(text: str) -> str:
    text = _NON_ALNUM.sub(" ", text).strip()
    return _SPACED_RUN.sub(lambda m: m.group(0).replace(" ", ""), text)


def views(text: str) -> list[tuple[str, bool]]:
    """Normalised renderings of `text` as (view, squashed) pairs to match patterns against."""
    folded = _fold(text)
    out: list[tuple[str, bool]] = []
    for variant in (folded, _deleet(folded, _LEET_I), _deleet(folded, _LEET_L)):
        spaced = _spaced(variant)
        for view in ((spaced, False), (spaced.replace(" ", ""), True)):
            if view not in out:
                out.append(view)
    return out


def marker_view(text: str) -> str:
    """Casefolded, de-obfuscated text that keeps punctuation (for `[system]`-style markers)."""
    return _fold(text)
