"""`segsync auth KIND --source NAME --code CODE`: the first OAuth token pair of a source.

The connector of KIND does the exchange (the core names no CRM); the pair goes straight into the
store's token row, from where the connector refreshes it under a cross-process lock.
"""

import asyncio
from typing import Annotated

import typer

from segsync.commands.common import ConfigOption, console, fail
from segsync.errors import SegsyncError


def register(app: typer.Typer) -> None:
    @app.command("auth")
    def auth(
        kind: Annotated[str, typer.Argument(help="Connector kind, e.g. amocrm.")],
        source: Annotated[str, typer.Option("--source", "-s", help="Source name from the rules file.")],
        code: Annotated[str, typer.Option("--code", help="Authorization code (single use, short-lived).")],
        config: ConfigOption = None,
    ) -> None:
        """Exchange an OAuth authorization code for tokens and store them (re-run to re-authorize)."""
        from segsync.app import open_app
        from segsync.logs import register_secret
        from segsync.registry import connector_spec
        from segsync.tokens import DbTokenStore

        register_secret(code)
        try:
            app_ = open_app(config)
            matches = [s for s in app_.rules.sources if s.name == source]
            if not matches:
                raise typer.BadParameter(f"no source named {source!r} in {app_.config_path}")
            src = matches[0]
            if src.kind != kind:
                raise typer.BadParameter(f"source {source!r} is {src.kind}, not {kind}")
            spec = connector_spec(kind)
            if spec.authorize is None:
                raise typer.BadParameter(f"{kind} sources have no authorization-code flow")
            ids = app_.source_ids()
            message = asyncio.run(spec.authorize(src, DbTokenStore(app_.engine, ids[source]), code))
        except SegsyncError as exc:
            raise fail(exc) from None
        console.print(f"[green]ok[/green] {message}", highlight=False)
