"""Normalized phones and e-mails, the keys duplicate search and write-back matching rely on.

One implementation for every connector, so that a phone typed into Bitrix24 and the same phone in amoCRM or a CSV
export become the same string. ``phonenumbers`` is the reference, but it costs ~140 µs a number, which made it
two thirds of a Bitrix24 contact export's client time; the common Russian forms (``+7 …``, ``8 …``, ten digits)
take a fast path that a property test keeps identical to ``phonenumbers``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import phonenumbers

#: ``+7 (912) 345-67-89``, ``8 912 345 67 89``, ``89123456789``, ``9123456789`` and the like.
_RUSSIAN = re.compile(
    r"(?P<prefix>\+7|8)?[ -]?(?:\((?P<paren>[0-9]{3})\)|(?P<code>[0-9]{3}))"
    r"[ -]?(?P<a>[0-9]{3})[ -]?(?P<b>[0-9]{2})[ -]?(?P<c>[0-9]{2})"
)


def normalize_phone(value: Any, region: str = "RU") -> str | None:
    """E.164 when the number is possible; else its digits (still useful to find duplicates); None when junk."""
    text = str(value or "").strip()
    if not text:
        return None
    return _fast_e164(text, region) or _parsed(text, region)


def normalize_email(value: Any) -> str | None:
    text = str(value or "").strip().lower()
    return text if "@" in text and " " not in text else None


def _fast_e164(text: str, region: str) -> str | None:
    match = _RUSSIAN.fullmatch(text)
    if match is None:
        return None
    national = (match["paren"] or match["code"]) + match["a"] + match["b"] + match["c"]
    if match["prefix"] != "+7" and (region != "RU" or ((match["prefix"] or "") + national).startswith("810")):
        return None  # 8-10 is Russia's international call prefix: leave such numbers to phonenumbers
    return "+7" + national


@lru_cache(maxsize=65536)
def _parsed(text: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    digits = "".join(ch for ch in text if ch.isdigit())
    return digits if len(digits) >= 5 else None
