"""`segsync sandbox serve`: the local CRM emulator (Bitrix24 portals, amoCRM accounts) over HTTP."""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    sandbox = typer.Typer(help="The local CRM sandbox (emulated Bitrix24 and amoCRM).", no_args_is_help=True)
    app.add_typer(sandbox, name="sandbox")

    @sandbox.command("serve")
    def serve(
        port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 = a free port).")] = 0,
        seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 1,
        size: Annotated[str, typer.Option(help="tiny | small | demo | bench-b24 | bench-amo | huge")] = "demo",
        customers: Annotated[int | None, typer.Option(help="Rescale the size preset to this many customers.")] = None,
        portals: Annotated[int, typer.Option(help="Bitrix24 portals to serve.")] = 1,
        accounts: Annotated[int, typer.Option(help="amoCRM accounts to serve.")] = 1,
        host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
        state: Annotated[
            Path | None, typer.Option(help="Not supported yet: the sandbox keeps its state in memory.")
        ] = None,
        b24_option: Annotated[
            list[str] | None, typer.Option("--b24-option", help="A Bitrix24Options knob, e.g. plan=enterprise.")
        ] = None,
    ) -> None:
        """Serve until SIGTERM/SIGINT. Prints ONE JSON line with URLs, credentials and the admin token."""
        from segsync.sandbox.server import Sandbox, bind, make_server

        if state is not None:
            typer.echo("--state is not supported yet: the sandbox state lives in memory", err=True)
            raise typer.Exit(2)
        options = dict(kv.split("=", 1) for kv in (b24_option or []))
        try:
            sb = Sandbox.create(
                seed=seed, size=size, customers=customers, portals=portals, accounts=accounts, b24_options=options
            )
        except (ValueError, KeyError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        # The built CRM data lives until exit: move it out of the collector's reach, or every full
        # collection rescans millions of objects in the middle of serving pages.
        gc.collect()
        gc.freeze()
        sock = bind(host, port)
        info = sb.info(f"http://{host}:{sock.getsockname()[1]}")
        sys.stdout.write(json.dumps(info, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        server = make_server(sb, sock)

        async def run() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
            await server.serve(sockets=[sock])

        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        asyncio.run(run())
