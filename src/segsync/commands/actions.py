"""`segsync plan` and `segsync push`: preview and apply tags/fields and manager tasks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from segsync.commands.common import ConfigOption, JsonOption, console, fail, out, print_json
from segsync.errors import SegsyncError

SourceOption = Annotated[str | None, typer.Option("--source", "-s", help="Only this source (default: all enabled).")]
AsOfOption = Annotated[
    datetime | None, typer.Option("--as-of", help="Plan for this moment (ISO, UTC if no offset); default now.")
]
LimitOption = Annotated[int, typer.Option("--show", help="How many ops to list (0: counts only).")]


def _selected(app_, name):
    sources = [s for s in app_.rules.sources if s.enabled and (name is None or s.name == name)]
    if name is not None and not sources:
        raise typer.BadParameter(f"no enabled source named {name!r} in {app_.config_path}")
    return sources


def _aware(moment: datetime | None) -> datetime | None:
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


def _show(plan, applied: dict | None, limit: int) -> None:
    counts = plan.counts()
    table = Table(title=f"{plan.source}: plan at {plan.as_of:%Y-%m-%d %H:%M} UTC", title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in counts.items() or {"nothing to do": 0}.items():
        table.add_row(key, str(value))
    for key, value in (applied or {}).items():
        table.add_row(f"applied: {key}", str(value))
    out.print(table)
    for note in plan.notes:
        console.print(f"[yellow]note[/yellow] {note}", highlight=False)
    if limit and plan.ops:
        listed = [o for o in plan.ops if o.change != "due" or o.attempts] or plan.ops
        ops = Table(show_header=True, title_justify="left")
        for col in ("op", "customer", "action", "change", "when", "reason"):
            ops.add_column(col, overflow="fold")
        for o in listed[:limit]:
            when = "now" if o.not_before is None or o.not_before <= plan.as_of else f"{o.not_before:%Y-%m-%d}"
            if o.state == "skipped":
                when = "—"
            ops.add_row(o.op, f"{o.customer.kind}:{o.customer.remote_id}", o.rule or "", o.change, when, o.reason)
        out.print(ops)
        if len(listed) > limit:
            console.print(f"… {len(listed) - limit} more (use --json for all)", highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("plan")
    def plan(
        config: ConfigOption = None,
        source: SourceOption = None,
        as_of: AsOfOption = None,
        show: LimitOption = 20,
        as_json: JsonOption = False,
    ) -> None:
        """Show what a push would write (labels, tasks, completions), with counts and the reason for each op."""
        from segsync.actions import plan_source
        from segsync.app import open_app

        try:
            app_ = open_app(config)
            ids = app_.source_ids()
            plans = [
                plan_source(app_.engine, ids[s.name], app_.rules, as_of=_aware(as_of)) for s in _selected(app_, source)
            ]
        except SegsyncError as exc:
            raise fail(exc) from None
        if as_json:
            print_json({p.source: p.to_json() for p in plans})
            return
        for p in plans:
            _show(p, None, show)

    @app.command("push")
    def push(
        config: ConfigOption = None,
        source: SourceOption = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only; write nothing anywhere.")] = False,
        as_of: AsOfOption = None,
        show: LimitOption = 0,
        as_json: JsonOption = False,
    ) -> None:
        """Write labels and manager tasks to the CRM, exactly once (reconciling interrupted writes first)."""
        from segsync.actions import PushResult, plan_source, push_source
        from segsync.app import open_app
        from segsync.connect import open_connector

        results = []
        try:
            app_ = open_app(config)
            ids = app_.source_ids()
            for src in _selected(app_, source):
                if dry_run:  # the same planning code as a real push, and no connector at all
                    plan = plan_source(app_.engine, ids[src.name], app_.rules, as_of=_aware(as_of))
                    results.append(PushResult(plan=plan, dry_run=True))
                    continue

                async def run(src=src):
                    prefix = app_.rules.writeback.tags.prefix
                    async with open_connector(app_.engine, ids[src.name], src, label_prefix=prefix) as conn:
                        return await push_source(app_.engine, ids[src.name], app_.rules, conn, as_of=_aware(as_of))

                results.append(asyncio.run(run()))
        except SegsyncError as exc:
            raise fail(exc) from None
        if as_json:
            print_json({r.plan.source: r.to_json() for r in results})
            return
        for r in results:
            _show(r.plan, None if r.dry_run else r.counts, show if show or not dry_run else 20)
