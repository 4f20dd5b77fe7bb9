"""Shared knobs for the reliability suite: bounded in CI, full with ``make reliability``.

``SEGSYNC_RELIABILITY=full`` selects the full sizes the issue asks for (≥ 50 kill points, ≥ 5,000 fuzzed records
per connector, ...); anything else runs the bounded form that keeps CI under its time budget. Each test records the
figures it proves with :func:`record`; the suite prints them at the end so they can be quoted in the issue note.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FULL = os.environ.get("SEGSYNC_RELIABILITY", "").lower() == "full"
FIGURES: dict[str, Any] = {}
_DB_KIND = "postgresql" if os.environ.get("SEGSYNC_TEST_DB", "sqlite").startswith("postgres") else "sqlite"
FIGURES_FILE = Path(os.environ.get("SEGSYNC_RELIABILITY_FIGURES", f"artifacts/reliability-figures-{_DB_KIND}.json"))

# Not inside a longer token on either side: a server's hex request id ("8243...9a") is not a phone number.
_PHONE = re.compile(r"(?<![\w.])\+?[78][\s(-]*\d{3}[\s)-]*\d{3}[\s-]*\d{2}[\s-]*\d{2}(?!\w)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


def pick(bounded: int, full: int) -> int:
    """The bounded size in CI, the full size under ``make reliability``."""
    return full if FULL else bounded


def record(name: str, value: Any) -> None:
    """Remember a figure (``crash.points_killed`` = 52, ...) for the end-of-suite summary."""
    FIGURES[name] = value


def add(name: str, value: int) -> None:
    """Accumulate a counting figure across tests."""
    FIGURES[name] = FIGURES.get(name, 0) + value


def leaks(text: str, secrets: Iterable[str]) -> list[str]:
    """What in ``text`` must never be in a log: any of ``secrets``, a phone number or an e-mail address."""
    found = [f"secret …{s[-4:]}" for s in secrets if s and len(s) >= 6 and s in text]
    found += [f"phone {m.group(0)[:4]}…" for m in _PHONE.finditer(text)]
    found += [f"e-mail …@{m.group(0).split('@', 1)[1]}" for m in _EMAIL.finditer(text)]
    return found


def write_figures() -> None:
    if not FIGURES:
        return
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    FIGURES_FILE.write_text(json.dumps({"mode": "full" if FULL else "bounded", **FIGURES}, indent=2, sort_keys=True))
