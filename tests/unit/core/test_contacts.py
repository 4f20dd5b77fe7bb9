from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segsync.contacts import _fast_e164, _parsed, normalize_email, normalize_phone

digits = st.text(alphabet="0123456789", min_size=1, max_size=1)
layouts = st.sampled_from(
    ["{p}{c}{a}{b}{d}", "{p} ({c}) {a}-{b}-{d}", "{p}{c} {a} {b} {d}", "{p}-{c}-{a}-{b}-{d}", "{p}({c}){a}{b}{d}"]
)


@st.composite
def russian_looking(draw: st.DrawFn) -> str:
    part = lambda n: "".join(draw(digits) for _ in range(n))  # noqa: E731
    prefix = draw(st.sampled_from(["", "8", "+7", "8 ", "+7 ", "7"]))
    return draw(layouts).format(p=prefix, c=part(3), a=part(3), b=part(2), d=part(2))


@settings(max_examples=3000, deadline=None)
@given(russian_looking(), st.sampled_from(["RU", "KZ", "US", "DE"]))
def test_fast_path_agrees_with_phonenumbers(text: str, region: str) -> None:
    fast = _fast_e164(text, region)
    if fast is not None:
        assert fast == _parsed.__wrapped__(text, region)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+7 (912) 345-67-89", "US", "+79123456789"),
        ("8 (912) 345-67-89", "RU", "+79123456789"),
        ("8 (912) 345-67-89 доб. 12", "RU", "+79123456789"),  # slow path: phonenumbers drops the extension
        ("8 10 49 30 1234567", "RU", "+49301234567"),  # 8-10: calling abroad from Russia
        ("+1 (650) 253-0000", "RU", "+16502530000"),
        ("12-34", "RU", None),
        ("   ", "RU", None),
    ],
)
def test_normalize_phone(raw: str, region: str, expected: str | None) -> None:
    assert normalize_phone(raw, region) == expected


def test_fast_path_covers_the_usual_forms() -> None:
    for text in ("+7 (912) 345-67-89", "8 912 345 67 89", "89123456789", "9123456789", "8-912-345-67-89"):
        assert _fast_e164(text, "RU") == "+79123456789"
        assert phonenumbers.format_number(phonenumbers.parse(text, "RU"), phonenumbers.PhoneNumberFormat.E164) == (
            "+79123456789"
        )


def test_normalize_email() -> None:
    assert normalize_email("  User@Example.COM ") == "user@example.com"
    assert normalize_email("not an email") is None
    assert normalize_email("two words@example.com") is None
