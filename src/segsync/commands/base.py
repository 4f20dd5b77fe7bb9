"""Foundation commands: check-config, schema, migrate, status."""

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from segsync.commands.common import ConfigOption, JsonOption, console, fail, print_json
from segsync.errors import SegsyncError


def register(app: typer.Typer) -> None:
    @app.command("check-config")
    def check_config(
        file: Annotated[Path | None, typer.Argument(help="Rules file to check.")] = None,
        config: ConfigOption = None,
    ) -> None:
        """Validate a rules file: exit 0 when valid, 2 with file:line:col messages when not."""
        from segsync.config import load_rules
        from segsync.settings import load_settings

        path = file or config or load_settings().config
        try:
            rules = load_rules(path)
        except SegsyncError as exc:
            raise fail(exc) from None
        console.print(
            f"[green]ok[/green] {path}: {len(rules.sources)} source(s), {len(rules.segments.custom)} custom "
            f"segment(s), {len(rules.actions)} action(s)",
            highlight=False,
        )

    @app.command("schema")
    def schema() -> None:
        """Print the JSON Schema of the rules file (for editors: yaml-language-server)."""
        from segsync.config import json_schema

        print_json(json_schema())

    @app.command("migrate")
    def migrate(config: ConfigOption = None) -> None:
        """Create or upgrade the store schema."""
        from segsync.app import open_app
        from segsync.store import make_engine, upgrade

        try:
            app_ = open_app(config)
            before, after = upgrade(make_engine(app_.store_url))
        except SegsyncError as exc:
            raise fail(exc) from None
        console.print(f"store at revision {after} (was {before or 'empty'})", highlight=False)

    @app.command("status")
    def status(
        config: ConfigOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Per source: customers, deals by status, quarantine, cursor ages, runs, parked ops."""
        from segsync.app import open_app
        from segsync.status import collect_status

        try:
            app_ = open_app(config)
            report = collect_status(app_.engine, app_.source_ids())
        except SegsyncError as exc:
            raise fail(exc) from None
        if as_json:
            print_json(report)
            return
        for name, info in report["sources"].items():
            table = Table(title=f"{name} ({info['kind']}, {info['state']})", show_header=False, title_justify="left")
            for key, value in info.items():
                if key in ("kind", "state"):
                    continue
                if value in (None, [], {}, ""):
                    continue
                if key == "last_runs" and isinstance(value, dict):
                    for step, run in value.items():
                        table.add_row(f"last {step}", _inline(run))
                    continue
                label = key.removesuffix("_s").replace("_", " ")
                shown = _inline(value, seconds=key.endswith("_s")) if isinstance(value, dict) else _show(key, value)
                table.add_row(label, shown)
            console.print(table)


def _ago(seconds: float) -> str:
    """Seconds as an operator reads them: 45s, 14m, 3h 5m, 2d 4h."""
    seconds = int(seconds)
    for size, unit, sub, sub_unit in ((86400, "d", 3600, "h"), (3600, "h", 60, "m")):
        if seconds >= size:
            rest = (seconds % size) // sub
            return f"{seconds // size}{unit}" + (f" {rest}{sub_unit}" if rest else "")
    return f"{seconds // 60}m" if seconds >= 60 else f"{seconds}s"


def _show(key: str, value: object, seconds: bool = False) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and (seconds or key.endswith("_s")):
        return _ago(value)
    return str(value)


def _inline(value: dict, *, seconds: bool = False) -> str:
    """A nested status dict on one line: ``key=value, ...`` (empty values left out, ages humanized)."""
    shown = [f"{k.removesuffix('_s')}={_show(k, v, seconds)}" for k, v in value.items() if v not in (None, {}, [], "")]
    return ", ".join(shown) or "-"
