"""Analytics commands: compute, segments, explain, quality."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from segsync.commands.common import ConfigOption, JsonOption, console, fail, out, print_json
from segsync.errors import SegsyncError

SourceOption = Annotated[str | None, typer.Option("--source", "-s", help="Only this source (default: all).")]


def _sources(app_: Any, only: str | None) -> list[tuple[Any, int]]:
    ids = app_.source_ids()
    chosen = [s for s in app_.rules.sources if (only is None and s.enabled) or s.name == only]
    if only is not None and not chosen:
        known = ", ".join(s.name for s in app_.rules.sources) or "none configured"
        raise SegsyncError(f"unknown source {only!r} (known: {known})")
    return [(s, ids[s.name]) for s in chosen]


def register(app: typer.Typer) -> None:
    @app.command("compute")
    def compute(
        source: SourceOption = None,
        as_of: Annotated[
            str | None,
            typer.Option("--as-of", help="YYYY-MM-DD (end of that day in the rules' time zone) or ISO datetime."),
        ] = None,
        config: ConfigOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Recompute features and segments from the store and save them (segment state, history, model fits)."""
        from segsync.app import open_app
        from segsync.compute.run import compute_source, parse_as_of

        try:
            app_ = open_app(config)
            moment = parse_as_of(as_of, app_.rules.timezone)
            summaries = [
                compute_source(app_.engine, app_.rules, src, sid, moment) for src, sid in _sources(app_, source)
            ]
        except (SegsyncError, ValueError) as exc:
            raise fail(exc if isinstance(exc, SegsyncError) else SegsyncError(str(exc))) from None
        if as_json:
            print_json([{"source": s.source, "run_id": s.run_id, **s.counts} for s in summaries])
            return
        table = Table(title=f"compute as of {moment.isoformat()}", title_justify="left")
        for column in ("source", "run", "customers", "won deals", "transitions", "models", "seconds"):
            table.add_column(column)
        for s in summaries:
            c = s.counts
            table.add_row(
                s.source,
                str(s.run_id),
                str(c["customers"]),
                str(c["won_deals"]),
                str(c["transitions"]),
                ", ".join(f"{m}: {st}" for m, st in c["fits"].items()) or "—",
                f"{sum(s.timings.values()):.1f}",
            )
        out.print(table)

    @app.command("segments")
    def segments(source: SourceOption = None, config: ConfigOption = None, as_json: JsonOption = False) -> None:
        """How many customers are in each segment (from the last compute)."""
        from segsync.app import open_app
        from segsync.compute.read import segment_counts
        from segsync.segments.names import display, title, titles_from_config

        try:
            app_ = open_app(config)
            chosen = _sources(app_, source)
            with app_.engine.connect() as conn:
                counts = {src.name: segment_counts(conn, sid) for src, sid in chosen}
        except SegsyncError as exc:
            raise fail(exc) from None
        if as_json:
            print_json({name: {"customers": total, "labels": labels} for name, (total, labels) in counts.items()})
            return
        language = app_.rules.language
        names = titles_from_config(app_.rules.segments)
        for name, (total, labels) in counts.items():
            if not total:
                console.print(f"{name}: no segments yet — run `segsync compute`", highlight=False)
                continue
            table = Table(title=f"{name}: {total} customers", title_justify="left")
            for column in ("label", "value", "name", "customers", "share"):
                table.add_column(column, justify="right" if column in ("customers", "share") else "left")
            for label, values in labels.items():
                for value, count in sorted(values.items(), key=lambda kv: (-kv[1], kv[0])):
                    table.add_row(
                        title(label, language),
                        value,
                        display(label, value, language, titles=names) or "",
                        str(count),
                        f"{100 * count / total:.1f}%",
                    )
            out.print(table)

    @app.command("explain")
    def explain(
        customer: Annotated[str, typer.Argument(help="kind:remote_id (e.g. company:42) or a remote id.")],
        source: SourceOption = None,
        config: ConfigOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """A customer's features, every label and why, its label history, and what segsync wrote to the CRM and why."""
        from segsync.actions.explain import explain_writeback
        from segsync.app import open_app
        from segsync.compute.load import customer_deals
        from segsync.compute.read import customer_state, find_customers
        from segsync.segments.explain import reasons
        from segsync.segments.features import purchases, revenue_series

        try:
            app_ = open_app(config)
            ids = app_.source_ids()
            with app_.engine.connect() as conn:
                found = find_customers(conn, ids, customer, source)
                if not found:
                    raise SegsyncError(f"no computed customer {customer!r}" + (f" in {source}" if source else ""))
                if len(found) > 1:
                    options = ", ".join(f"{s}/{k}:{r}" for s, _sid, k, r in found)
                    raise SegsyncError(f"{customer!r} is ambiguous: {options}; give kind:id and/or --source")
                name, sid, kind, remote = found[0]
                state = customer_state(conn, name, sid, kind, remote)
                src = app_.rules.source(name)
                deals = customer_deals(conn, sid, src, kind, remote)
            written = explain_writeback(app_.engine, sid, f"{kind}:{remote}")
        except SegsyncError as exc:
            raise fail(exc) from None
        assert state is not None
        seg = app_.rules.segments
        why = reasons(state.labels, state.features, seg)
        series = revenue_series(
            purchases(deals, state.as_of, app_.rules.timezone, src.purchases.pipelines),
            state.as_of,
            app_.rules.timezone,
            seg.xyz.period,
            seg.xyz.periods,
        )
        series_values = [round(v, 2) for v in series["revenue"].to_list()]
        if as_json:
            print_json(
                {
                    "source": name,
                    "customer": f"{kind}:{remote}",
                    "as_of": state.as_of,
                    "run_id": state.run_id,
                    "labels": state.labels,
                    "reasons": why,
                    "features": state.features,
                    "revenue_series": series_values,
                    "history": state.history,
                    "writeback": written,
                }
            )
            return
        out.print(f"[bold]{name} {kind}:{remote}[/bold] as of {state.as_of.isoformat()} (run {state.run_id})")
        labels = Table(title="labels", title_justify="left")
        labels.add_column("label")
        labels.add_column("value")
        labels.add_column("why")
        for key, value in state.labels.items():
            labels.add_row(key, value, why.get(key, ""))
        for key, text in why.items():
            if key not in state.labels:
                labels.add_row(key, "—", text)
        out.print(labels)
        features = Table(title="features", title_justify="left", show_header=False)
        for key, value in state.features.items():
            if value is not None:
                features.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
        features.add_row(f"revenue per {seg.xyz.period}", ", ".join(f"{v:g}" for v in series_values) or "—")
        out.print(features)
        history = Table(title="history", title_justify="left")
        for column in ("as of", "run", "label", "from", "to"):
            history.add_column(column)
        for h in state.history:
            history.add_row(
                h["as_of"].date().isoformat(), str(h["run_id"]), h["label"], h["from"] or "—", h["to"] or "—"
            )
        out.print(history)
        for entry in written["labels_written"]:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(entry["labels"].items())) or "—"
            out.print(f"written to the CRM: {shown} (at {entry['updated_at']})", highlight=False)
        out.print("[bold]write-back and tasks[/bold]" + ("" if written["ops"] else ": nothing written yet"))
        for op in written["ops"]:
            what = op["op"] + (f" {op['action']}" if op["action"] else "")
            remote = f" (CRM id {op['remote_id']})" if op["remote_id"] else ""
            out.print(
                f"  {op['at'][:16].replace('T', ' ')}  {what}  {op['state']}{remote}: {op['reason'] or ''}",
                highlight=False,
                soft_wrap=True,
            )

    @app.command("quality")
    def quality(
        source: SourceOption = None,
        limit: Annotated[int, typer.Option("--limit", help="Rows per list in the table output.")] = 20,
        config: ConfigOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Data quality: duplicate groups among all customers in the store, analysed customers nobody can reach
        (a company through its contacts too), long-inactive customers."""
        from segsync.app import now_utc, open_app
        from segsync.compute.load import load_source, store_customers
        from segsync.segments.features import features
        from segsync.segments.quality import data_quality

        try:
            app_ = open_app(config)
            reports = {}
            now = now_utc()
            for src, sid in _sources(app_, source):
                with app_.engine.connect() as conn:
                    loaded = load_source(conn, sid, src)
                    store = store_customers(conn, sid)
                frame = features(
                    loaded.inputs.deals,
                    now,
                    customers=loaded.inputs.customers,
                    touches=loaded.inputs.touches,
                    tz=app_.rules.timezone,
                    pipelines=src.purchases.pipelines,
                )
                days = app_.rules.segments.quality.inactive_after.total_seconds() / 86400.0
                reports[src.name] = data_quality(loaded.inputs.customers, frame, now, days, store=store)
        except SegsyncError as exc:
            raise fail(exc) from None
        if as_json:
            print_json(
                {
                    name: {
                        "counts": q.counts,
                        "duplicates": q.duplicates.to_dicts(),
                        "unreachable": q.unreachable["customer"].to_list(),
                        "inactive": q.inactive.to_dicts(),
                    }
                    for name, q in reports.items()
                }
            )
            return
        for name, q in reports.items():
            out.print(f"[bold]{name}[/bold]: " + ", ".join(f"{k} {v}" for k, v in q.counts.items()))
            dupes = Table(title="duplicate groups", title_justify="left")
            for column in ("group", "match", "customers"):
                dupes.add_column(column)
            grouped = q.duplicates.group_by("group", "match", maintain_order=True).agg("customer").head(limit)
            for group, match, members in grouped.iter_rows():
                dupes.add_row(str(group), match, ", ".join(members))
            out.print(dupes)
            inactive = Table(title=f"inactive (first {limit})", title_justify="left")
            for column in ("customer", "last activity", "days"):
                inactive.add_column(column)
            for customer_, last, days_ in q.inactive.head(limit).iter_rows():
                inactive.add_row(
                    customer_, last.date().isoformat() if last else "never", f"{days_:.0f}" if days_ else "—"
                )
            out.print(inactive)
            shown = ", ".join(q.unreachable["customer"].head(limit).to_list())
            out.print(f"unreachable (no phone, no e-mail): {q.unreachable.height}" + (f" — {shown}" if shown else ""))
