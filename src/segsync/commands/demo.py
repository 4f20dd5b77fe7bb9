"""`segsync demo`: pull → compute → plan → push against the built-in CRM sandbox, then a report."""

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from segsync.commands.common import console, fail, out
from segsync.errors import SegsyncError


def _print_summary(result) -> None:
    out.print(
        f"\n[bold]segsync demo[/bold] — sandbox at {result.sandbox['url']}, store and rules in {result.folder}/\n"
    )
    for src in result.sources:
        pulled = ", ".join(f"{n} {e}" for e, n in src.pulled.items() if n)
        out.print(f"[bold]{src.name}[/bold] ({src.kind}): pulled {pulled}", highlight=False)
        table = Table(title=f"{src.customers} customers analysed", title_justify="left")
        table.add_column("label")
        table.add_column("customers per segment")
        for label, counts in src.segments.items():
            shown = ", ".join(f"{value} {n}" for value, n in list(counts.items())[:8])
            table.add_row(label, shown or "—")
        out.print(table)
        managers = ", ".join(f"{name}: {n}" for name, n in src.tasks_by_manager.items()) or "none"
        out.print(
            f"  labels written: {src.labels_written}; tasks created per manager: {managers}"
            + (f"; {src.queued} more queued for the next days (daily cap)" if src.queued else ""),
            highlight=False,
        )
        out.print(
            f"  tasks found in the CRM sandbox: {src.tasks_in_crm}; requests made by a second push: "
            f"{src.second_push_writes} (nothing changed, nothing written)\n",
            highlight=False,
        )
    out.print(f"report: [bold]{result.report_path}[/bold] (open it in a browser)", highlight=False)
    out.print(f"rules:  {result.rules_path}   (secrets in {result.folder}/secrets, see {result.folder}/demo.env)")
    example = next((s for s in result.sources if s.example_customer), None)
    if example is not None:
        out.print(
            "why did a customer get a task? (the venv first, then the demo's secrets):\n"
            f"  . .venv/bin/activate; set -a; . {result.folder}/demo.env; set +a\n"
            f"  segsync explain --config {result.rules_path} --source {example.name} {example.example_customer}",
            highlight=False,
            soft_wrap=True,
        )


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        folder: Annotated[Path, typer.Option("--dir", help="Where the demo store, rules and report go.")] = Path(
            "segsync-demo"
        ),
        serve: Annotated[
            bool, typer.Option("--serve", help="Keep the sandbox and the daemon running (webhooks → cycles).")
        ] = False,
        seed: Annotated[int, typer.Option(help="Seed of the synthetic CRMs.")] = 7,
        size: Annotated[str, typer.Option(help="Sandbox size preset: tiny (100 customers) or demo (~3,000).")] = "demo",
    ) -> None:
        """Run the whole flow against the built-in CRM sandbox (SQLite store), write the report, print a summary."""
        import os

        from segsync.demo import run_demo
        from segsync.logs import configure_logging
        from segsync.settings import load_settings

        if "SEGSYNC_LOG_LEVEL" not in os.environ:  # the summary is the output; logs only when asked for
            configure_logging("warning", load_settings().log_format)

        def ready(result) -> None:
            _print_summary(result)
            if serve:
                admin = result.sandbox["admin"]
                out.print(
                    "\n[bold]serving[/bold]: the daemon works both sources; edit a deal in the sandbox and watch a "
                    "webhook-triggered cycle in the logs, e.g.\n"
                    f"  curl -X POST -H 'X-Sandbox-Admin: {admin['token']}' -H 'Content-Type: application/json' "
                    f'-d \'{{"STAGE_ID": "WON"}}\' {result.sandbox["url"]}/b24/portal/_admin/entities/deal/1\n'
                    f"  sandbox state: {result.sandbox['url']}/b24/portal/_admin/state (same header); Ctrl-C stops.",
                    highlight=False,
                )

        try:
            console.print("starting the CRM sandbox and running pull → compute → push (about a minute)…")
            run_demo(folder, seed=seed, size=size, serve=serve, on_ready=ready)
        except SegsyncError as exc:
            raise fail(exc) from None
