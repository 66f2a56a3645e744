"""Decode what attackers hide instructions in (Base64, hex, ROT13, URL escapes, tag characters).

`decoded_views(text)` returns (encoding, decoded text) pairs for every readable payload found,
so the rules and the classifier also check what the LLM could read out of the text. Decoding
is bounded: at most `MAX_VIEWS` payloads, two levels deep (Base64 of hex, ...).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from urllib.parse import unquote

MAX_VIEWS = 16
_MIN_DECODED = 6  # shorter payloads cannot hold an instruction
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/_-]{4}\s?){4,}(?:[A-Za-z0-9+/_-]{2,4}={0,2})?")
_HEX = re.compile(r"(?:(?:0x|\\x)?[0-9a-fA-F]{2}[\s:,-]?){8,}")
_URL = re.compile(r"(?:%[0-9a-fA-F]{2}[^%\s]{0,3}){4,}")
_TAG_FIRST, _TAG_LAST = 0xE0000, 0xE007F
# Frequent English words: a ROT13 view is kept only when it reads more like English than the
# text itself ("vtaber nyy" -> "ignore all"), so ordinary text never gains a garbage view.
_COMMON_WORDS = (
    "the a an and or to of in is it you your i me my be are was this that what with for on "
    "not no do say print all any ignore instructions previous above following just now "
    "please tell write output repeat secret system prompt rules from as at by"
)
_COMMON = frozenset(_COMMON_WORDS.split())


def _readable(raw: bytes) -> str | None:
    """The bytes as text when they look like language (printable, has letters and spaces)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < _MIN_DECODED:
        return None
    printable = sum(ch.isprintable() or ch in "\n\t" for ch in text)
    # Letters or digits: a payload may itself be hex or Base64 (decoded again one level down).
    alnum = sum(ch.isalnum() for ch in text)
    if printable < 0.95 * len(text) or alnum < 0.5 * len(text.replace(" ", "")):
        return None
    return text


def _english_ratio(text: str) -> float:
    words = re.findall(r"[a-z]+", text.lower())
    return sum(w in _COMMON for w in words) / len(words) if words else 0.0


def unicode_tags(text: str) -> str:
    """The ASCII text smuggled as Unicode tag characters (U+E0020-E007E), '' when none."""
    return "".join(
        chr(ord(ch) - _TAG_FIRST)
        for ch in text
        if _TAG_FIRST + 0x20 <= ord(ch) <= _TAG_FIRST + 0x7E
    )


def _base64(text: str) -> list[str]:
    out = []
    for m in _BASE64.finditer(text):
        chunk = re.sub(r"\s", "", m.group(0))
        if len(chunk) < 12 or (chunk.isalpha() and chunk.islower()):
            continue  # long plain words are not Base64
        padded = chunk + "=" * (-len(chunk) % 4)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                found = _readable(decode(padded))
            except (binascii.Error, ValueError):
                continue
            if found:
                out.append(found)
                break
    return out


def _hex(text: str) -> list[str]:
    out = []
    for m in _HEX.finditer(text):
        digits = re.sub(r"0x|\\x|[\s:,-]", "", m.group(0))
        if len(digits) % 2:
            digits = digits[:-1]
        with_text = _readable(bytes.fromhex(digits))
        if with_text:
            out.append(with_text)
    return out


def _once(text: str) -> list[tuple[str, str]]:
    views: list[tuple[str, str]] = []
    tags = unicode_tags(text)
    if len(tags) >= _MIN_DECODED:
        views.append(("unicode_tags", tags))
    views += [("base64", t) for t in _base64(text)]
    views += [("hex", t) for t in _hex(text)]
    if _URL.search(text):
        unquoted = unquote(text)
        if unquoted != text:
            views.append(("url", unquoted))
    rot = codecs.encode(text, "rot13")
    if _english_ratio(rot) >= 0.2 and _english_ratio(rot) > 2 * _english_ratio(text):
        views.append(("rot13", rot))
    return views


def decoded_views(text: str) -> list[tuple[str, str]]:
    """(encoding, decoded text) for every readable payload in `text`, two levels deep."""
    out: list[tuple[str, str]] = []
    for enc, decoded in _once(text):
        out.append((enc, decoded))
        for inner_enc, inner in _once(decoded):
            out.append((f"{enc}+{inner_enc}", inner))
        if len(out) >= MAX_VIEWS:
            break
    return out[:MAX_VIEWS]
