"""PII redaction: e-mail, phone, SSN, payment cards (Luhn + issuer prefix) and IP addresses."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

TOKENS = {
    "email": "[EMAIL_REDACTED]",
    "credit_card": "[CREDIT_CARD_REDACTED]",
    "ssn": "[SSN_REDACTED]",
    "ip": "[IP_REDACTED]",
    "phone": "[PHONE_REDACTED]",
}

_EMAIL = re.compile(
    r"(?<![\w.+-])[a-z0-9](?:[a-z0-9._%+-]{0,62}[a-z0-9])?@"
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}(?![\w-])",
    re.IGNORECASE,
)
# 13-19 digits, optionally grouped by single spaces or dashes.
_CARD = re.compile(r"(?<![\d.-])\d(?:[ -]?\d){12,18}(?![\d-])")
# Dashed or spaced SSN; area 000/666/9xx, group 00 and serial 0000 are never issued.
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d-])")
_IPV4 = re.compile(
    r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
    r"(?![\d]|\.\d)"
)
_IPV6_CANDIDATE = re.compile(r"(?<![\w:.])[0-9a-f:.]*:[0-9a-f:.]*:[0-9a-f:.]*(?![\w:])", re.I)
_PHONE_INTL = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){1,6}(?![\d-])"
)
_PHONE_NANP = re.compile(r"(?<![\w(.-])(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\d-])")
# National format with a trunk "0": "020 7946 0958", "0151-234-5678", "06 12 34 56 78".
_PHONE_TRUNK = re.compile(r"(?<![\w.-])0[1-9]\d{0,3}(?:[ -]\d{2,4}){2,4}(?![\d-])")

# Issuer prefixes: a Luhn-valid digit string that no card network issues is not redacted.
_CARD_PREFIXES = re.compile(
    r"^(4\d{12}(\d{3}){0,2}"  # Visa 13/16/19
    r"|5[1-5]\d{14}|2(2[2-9][1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)\d{12}"  # Mastercard
    r"|3[47]\d{13}"  # Amex
    r"|6(011|5\d\d|4[4-9]\d)\d{12,15}"  # Discover
    r"|3(0[0-5]|[68]\d)\d{11,16}"  # Diners
    r"|35(2[89]|[3-8]\d)\d{12,15}"  # JCB
    r"|(5018|5020|5038|6304|6759|676[1-3])\d{8,15}"  # Maestro
    r"|62\d{14,17})$"  # UnionPay
)


def luhn_ok(digits: str) -> bool:
    """True if the digit string passes the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _is_card(match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    return 13 <= len(digits) <= 19 and bool(_CARD_PREFIXES.match(digits)) and luhn_ok(digits)


def _is_ipv6(match: str) -> bool:
    candidate = match.strip(".")
    if candidate.count(":") < 2:
        return False
    try:
        return ipaddress.ip_address(candidate).version == 6
    except ValueError:
        return False


def _is_phone(match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    return 7 <= len(digits) <= 15


def _is_trunk_phone(match: str) -> bool:
    # Nine digits at least: shorter dashed groups are dates ("01-02-2024") or references.
    digits = re.sub(r"\D", "", match)
    return 9 <= len(digits) <= 12


@dataclass(frozen=True)
class Redaction:
    """How many values of one PII type were replaced."""

    type: str
    count: int


_Rule = tuple[str, re.Pattern[str], Callable[[str], bool] | None]
# Order matters: cards before phones (grouped card digits look like phone numbers) and
# e-mails first (their local part may hold digits).
_RULES: list[_Rule] = [
    ("email", _EMAIL, None),
    ("credit_card", _CARD, _is_card),
    ("ssn", _SSN, None),
    ("ip", _IPV6_CANDIDATE, _is_ipv6),  # before IPv4 so "::ffff:192.0.2.1" goes whole
    ("ip", _IPV4, None),
    ("phone", _PHONE_INTL, _is_phone),
    ("phone", _PHONE_NANP, None),
    ("phone", _PHONE_TRUNK, _is_trunk_phone),
]


def redact(text: str) -> tuple[str, list[Redaction]]:
    """Replace PII with typed tokens; return the new text and counts per type."""
    counts: Counter[str] = Counter()
    for kind, rx, check in _RULES:

        def _sub(
            m: re.Match[str], kind: str = kind, check: Callable[[str], bool] | None = check
        ) -> str:
            if check is not None and not check(m.group(0)):
                return m.group(0)
            counts[kind] += 1
            return TOKENS[kind]

        text = rx.sub(_sub, text)
    order = list(TOKENS)
    return text, [Redaction(k, counts[k]) for k in sorted(counts, key=order.index)]
