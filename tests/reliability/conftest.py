"""Reliability suite hooks: print the proven figures at the end of the run."""

from __future__ import annotations

from typing import Any

from . import support


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not support.FIGURES:
        return
    support.write_figures()
    mode = "full" if support.FULL else "bounded"
    terminalreporter.section(f"reliability figures ({mode})")
    for name, value in sorted(support.FIGURES.items()):
        terminalreporter.write_line(f"{name:<48} {value}")
