"""Bits every command module shares: the --config option, error reporting, JSON output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from segsync.errors import ConfigError, SegsyncError

console = Console(stderr=True)
out = Console()

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Rules file (default: $SEGSYNC_CONFIG or config/segsync.yaml)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def fail(exc: SegsyncError) -> typer.Exit:
    """Report an expected error without a traceback: exit 2 for bad config, 1 otherwise."""
    if isinstance(exc, ConfigError):
        for issue in exc.issues:
            console.print(f"[red]error[/red] {issue}", highlight=False, soft_wrap=True, markup=True)
        return typer.Exit(2)
    console.print(f"[red]error[/red] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
