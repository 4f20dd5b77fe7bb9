"""The `segsync` command line. Each area registers its commands from its own module (see _AREAS)."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from segsync import __version__
from segsync.logs import configure_logging
from segsync.runtime import tune_process
from segsync.settings import load_settings

app = typer.Typer(
    name="segsync",
    help="Customer segmentation sync for Bitrix24 and amoCRM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
#: Modules that add commands with a `register(app)` function; one line per area.
_AREAS: list[str] = [
    "segsync.commands.base",
    "segsync.commands.analytics",
    "segsync.commands.sandbox",
    "segsync.commands.sync",
    "segsync.commands.daemon",
    "segsync.commands.auth",
    "segsync.commands.actions",
    "segsync.commands.report",
    "segsync.commands.demo",
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"segsync {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)


for _module in _AREAS:
    importlib.import_module(_module).register(app)


def main() -> None:
    tune_process()
    app()


if __name__ == "__main__":  # pragma: no cover - `python -m segsync.cli`
    main()
