"""`segsync run` (the daemon) and `segsync backup`."""

from pathlib import Path
from typing import Annotated

import typer

from segsync.commands.common import ConfigOption, console, fail
from segsync.errors import SegsyncError


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(config: ConfigOption = None) -> None:
        """Run the daemon: scheduled pulls and reconciliations, webhooks, /healthz, /readyz, /metrics."""
        from sqlalchemy.exc import OperationalError

        from segsync.app import open_app
        from segsync.daemon import run_daemon
        from segsync.errors import StoreError
        from segsync.logs import redact_text

        try:
            code = run_daemon(open_app(config))
        except SegsyncError as exc:
            raise fail(exc) from None
        except OperationalError as exc:  # systemd restarts us; the message must say why
            reason = redact_text(str(exc.orig or exc).splitlines()[0])
            raise fail(StoreError(f"cannot reach the store: {reason}")) from None
        raise typer.Exit(code)

    @app.command("backup")
    def backup(
        file: Annotated[Path, typer.Argument(help="Where to write the copy (created 0600).")],
        config: ConfigOption = None,
    ) -> None:
        """Consistent online copy of a SQLite store (safe while the daemon runs; PostgreSQL: use pg_dump)."""
        from segsync.app import open_app
        from segsync.backup import backup_sqlite

        try:
            size = backup_sqlite(open_app(config).engine, file)
        except SegsyncError as exc:
            raise fail(exc) from None
        console.print(f"[green]backed up[/green] store to {file} ({size} bytes)", highlight=False)
