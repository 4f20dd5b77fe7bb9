"""`segsync report`: the HTML report for the sales director, written to one file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from segsync.commands.common import ConfigOption, console, fail
from segsync.errors import SegsyncError


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        config: ConfigOption = None,
        out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the HTML file.")] = Path(
            "segsync-report.html"
        ),
        source: Annotated[
            list[str] | None, typer.Option("--source", "-s", help="Only this source (repeatable; default: all).")
        ] = None,
        lang: Annotated[
            Literal["ru", "en"] | None, typer.Option("--lang", help="ru or en (default: the rules file's language).")
        ] = None,
    ) -> None:
        """Write one self-contained HTML report (charts inline, no network) from the store."""
        from segsync.app import open_app
        from segsync.logs import get_logger
        from segsync.report import render_report

        try:
            app_ = open_app(config)
            known = {s.name for s in app_.rules.sources}
            unknown = sorted(set(source or ()) - known)
            if unknown:
                raise typer.BadParameter(f"no source named {', '.join(unknown)} in {app_.config_path}")
            html = render_report(app_.engine, app_.rules, sources=source or None, lang=lang)
        except SegsyncError as exc:
            raise fail(exc) from None
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(out)
        size = out.stat().st_size
        get_logger(__name__).info("report.written", path=str(out), bytes=size, sources=len(source or known))
        console.print(f"[green]report[/green] {out} ({size / 1024:.0f} KiB)", highlight=False)
