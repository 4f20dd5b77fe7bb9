"""`segsync pull` and `segsync reconcile`."""

import asyncio
import sys
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from segsync.commands.common import ConfigOption, JsonOption, console, fail, print_json
from segsync.errors import SegsyncError

SourceOption = Annotated[str | None, typer.Option("--source", "-s", help="Only this source (default: all enabled).")]


def _selected(app_, name):
    sources = [s for s in app_.rules.sources if s.enabled and (name is None or s.name == name)]
    if name is not None and not sources:
        raise typer.BadParameter(f"no enabled source named {name!r} in {app_.config_path}")
    return sources


def _progress_bar():
    """A rich progress bar on a terminal; structured logs only otherwise."""
    if not sys.stderr.isatty():
        return None
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def register(app: typer.Typer) -> None:
    @app.command("pull")
    def pull(
        config: ConfigOption = None,
        source: SourceOption = None,
        full: Annotated[bool, typer.Option("--full", help="Re-read everything, ignoring cursors.")] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Pull users, pipelines, customers, deals and touches from the CRM into the store."""
        from segsync.app import open_app
        from segsync.connect import open_connector
        from segsync.sync import pull_source

        try:
            app_ = open_app(config)
            ids = app_.source_ids()
            results = {}
            for src in _selected(app_, source):
                bar = _progress_bar()
                tasks: dict[str, int] = {}

                def progress(entity, n, total, bar=bar, tasks=tasks, name=src.name):
                    if bar is None:
                        return
                    if entity not in tasks:
                        tasks[entity] = bar.add_task(f"{name} {entity}", total=total)
                    bar.update(tasks[entity], advance=n, total=total)

                async def run(src=src, progress=progress):
                    async with open_connector(app_.engine, ids[src.name], src) as conn:
                        return await pull_source(app_.engine, ids[src.name], conn, full=full, progress=progress)

                if bar is not None:
                    with bar:
                        result = asyncio.run(run())
                else:
                    result = asyncio.run(run())
                results[src.name] = result.counts
        except SegsyncError as exc:
            raise fail(exc) from None
        if as_json:
            print_json(results)
        else:
            for name, counts in results.items():
                summary = ", ".join(f"{e} {c.get('upserted', 0)}" for e, c in counts.items() if e != "events")
                console.print(f"[green]pulled[/green] {name}: {summary}", highlight=False)

    @app.command("reconcile")
    def reconcile(config: ConfigOption = None, source: SourceOption = None, as_json: JsonOption = False) -> None:
        """ID sweep: mark records deleted in the CRM as deleted here (guarded against mass deletes)."""
        from segsync.app import open_app
        from segsync.connect import open_connector
        from segsync.sync import reconcile_source

        try:
            app_ = open_app(config)
            ids = app_.source_ids()
            results = {}
            for src in _selected(app_, source):

                async def run(src=src):
                    async with open_connector(app_.engine, ids[src.name], src) as conn:
                        return await reconcile_source(app_.engine, ids[src.name], conn)

                results[src.name] = asyncio.run(run())
        except SegsyncError as exc:
            raise fail(exc) from None
        if as_json:
            print_json(results)
        else:
            for name, counts in results.items():
                for entity, c in counts.items():
                    console.print(
                        f"{name} {entity}: {c['deleted']} deleted, {c['restored']} restored"
                        + (f", [red]{c['refused']} refused[/red]" if c["refused"] else ""),
                        highlight=False,
                    )
