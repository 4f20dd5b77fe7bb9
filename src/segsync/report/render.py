"""Report model → one self-contained HTML file (inline CSS, inline SVG, a few lines of inline JS to sort
tables). Nothing is fetched: no CDN, no web fonts, no images."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache

import jinja2
from markupsafe import Markup
from sqlalchemy import Engine

from segsync.config.models import Rules
from segsync.report import keys as k
from segsync.report.charts import Bar, HeatCell, Series, columns, hbar, heatmap
from segsync.report.i18n import Texts, Titles
from segsync.report.model import Report, SourceReport
from segsync.segments import names

BLUE = "#2563eb"
BLUE_LIGHT = "#bfdbfe"
GREEN = "#16a34a"
TEAL = "#0891b2"
RED = "#dc2626"
AMBER = "#f59e0b"


def render_report(
    engine: Engine,
    rules: Rules,
    *,
    sources: Sequence[str] | None = None,
    lang: str | None = None,
    now: datetime | None = None,
) -> str:
    """The whole report as HTML: what ``segsync report`` writes and the daemon's ``/report`` serves."""
    from segsync.app import now_utc
    from segsync.report.data import load_sources, settings_from_rules
    from segsync.report.model import build_report

    settings = settings_from_rules(rules, lang)
    data = load_sources(engine, rules, sources)
    report = build_report(data, settings, now or now_utc())
    return render_html(report, titles=names.titles_from_config(rules.segments))


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("segsync.report", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    return env


def render_html(report: Report, *, titles: Titles | None = None) -> str:
    """``titles``: the admin's names of segments (:func:`segsync.segments.names.titles_from_config`)."""
    texts = Texts(report.settings.language, report.settings.timezone, titles or {})
    charts = {src.name: _Charts(source_charts(src, texts)) for src in report.sources}
    template = _environment().get_template("report.html.j2")
    return template.render(report=report, t=texts, charts=charts, k=k)


def _slug(source: str, chart: str) -> str:
    return f"{source}-{chart}"


class _Charts(dict):
    """A source's charts; a chart the data does not allow (no purchases yet, no tasks, ...) is simply absent."""

    def __missing__(self, key: str) -> Markup:
        return Markup("")


def source_charts(src: SourceReport, t: Texts) -> dict[str, Markup]:
    """Every chart of one source, by short name."""
    out: dict[str, Markup] = {}
    money = lambda x: t.compact_money(x, src.currency)  # noqa: E731
    count = t.integer

    if src.monthly:
        cats = [t.month(m.month) for m in src.monthly]
        faded = [m.partial for m in src.monthly]
        out["flow"] = columns(
            _slug(src.name, "flow"),
            t.t("flow_chart"),
            cats,
            [
                Series(t.t("gained"), GREEN, [m.gained for m in src.monthly]),
                Series(t.t("returned"), TEAL, [m.returned for m in src.monthly]),
                Series(t.t("lost"), RED, [-m.lost for m in src.monthly]),
            ],
            t.t("axis_customers"),
            t.t("axis_month"),
            lambda v: count(abs(v)) if v < 0 else count(v),
            faded=faded,
        )
        out["revenue"] = columns(
            _slug(src.name, "revenue"),
            t.t("revenue_chart"),
            cats,
            [
                Series(t.t("revenue_existing"), BLUE, [m.revenue_existing for m in src.monthly]),
                Series(t.t("revenue_new"), AMBER, [m.revenue_new for m in src.monthly]),
            ],
            f"{t.t('axis_revenue')}, {t.sign(src.currency)}",
            t.t("axis_month"),
            t.compact,
            tip=lambda x: t.money(x, src.currency),
            faded=faded,
        )

    if src.has_state:
        out["matrix"] = matrix_chart(src, t)
    if src.rfm:
        bars_n = [Bar(t.value(k.RFM, s.value), [s.customers], [count(s.customers)]) for s in src.rfm]
        bars_r = [Bar(t.value(k.RFM, s.value), [s.revenue], [money(s.revenue)]) for s in src.rfm]
        out["rfm_customers"] = hbar(
            _slug(src.name, "rfm-customers"),
            t.t("rfm_customers"),
            bars_n,
            [Series("", BLUE, [])],
            t.t("axis_customers"),
            count,
            label_room=170,
        )
        out["rfm_revenue"] = hbar(
            _slug(src.name, "rfm-revenue"),
            t.t("rfm_revenue"),
            bars_r,
            [Series("", GREEN, [])],
            f"{t.t('axis_revenue')}, {t.sign(src.currency)}",
            t.compact,
            label_room=170,
        )
    if src.net_changes:
        bars = [
            Bar(f"{t.label(c.label)}: {t.value(c.label, c.value)}", [c.net], [f"{c.net:+d}"]) for c in src.net_changes
        ]
        out["net"] = hbar(
            _slug(src.name, "net"),
            t.t("net_change"),
            bars,
            [Series("", GREEN, [])],
            t.t("axis_net"),
            lambda v: f"{v:+.0f}" if v else "0",
            width=720,
            label_room=260,
            negative_color=RED,
        )
    if src.cohorts:
        out["cohorts"] = cohort_chart(src, t)
    if src.tasks:
        bars = [
            Bar(m.manager or t.t("unassigned"), [m.created, m.created_week], [count(m.created), count(m.created_week)])
            for m in src.tasks[:20]
        ]
        out["tasks"] = hbar(
            _slug(src.name, "tasks"),
            t.t("tasks_chart"),
            bars,
            [Series(t.t("series_total"), BLUE_LIGHT, []), Series(t.t("series_week"), BLUE, [])],
            t.t("axis_tasks"),
            count,
            label_room=180,
        )
    q = src.quality
    if q.by_match:
        bars = [Bar(t.match(m), [n], [count(n)]) for m, n in sorted(q.by_match.items(), key=lambda kv: -kv[1])]
        out["duplicates"] = hbar(
            _slug(src.name, "duplicates"),
            t.t("q_chart"),
            bars,
            [Series("", AMBER, [])],
            t.t("axis_groups"),
            count,
            width=480,
            label_room=120,
        )
    return out


def matrix_chart(src: SourceReport, t: Texts) -> Markup:
    m = src.matrix
    total = m.total.revenue or 0.0
    peak = max((c.revenue for c in m.cells.values()), default=0.0) or 1.0
    cells = {}
    for i, row in enumerate(m.rows):
        for j, col in enumerate(m.columns):
            cell = m.cell(row, col)
            share = cell.revenue / total if total else 0.0
            if not cell.customers:
                cells[(i, j)] = HeatCell(intensity=0.0, lines=["—"], tip=f"{row}{col}: 0")
                continue
            cells[(i, j)] = HeatCell(
                intensity=cell.revenue / peak,
                lines=[
                    t.count(cell.customers),
                    f"{t.compact_money(cell.revenue, src.currency)} · {t.percent(share)}",
                ],
                tip=f"{row}{col}: {t.integer(cell.customers)} · {t.money(cell.revenue, src.currency)}",
            )
    return heatmap(
        _slug(src.name, "matrix"),
        t.t("sec_matrix"),
        [t.value(k.ABC, r) for r in m.rows],
        [t.value(k.XYZ, c) for c in m.columns],
        cells,
        t.t("axis_xyz"),
        t.t("axis_abc"),
        cell_w=150,
        cell_h=58,
        row_room=120,
        legend=(t.compact_money(0, src.currency), t.compact_money(peak, src.currency)),
    )


def cohort_chart(src: SourceReport, t: Texts) -> Markup:
    """Month 0 is 100 % by definition and drawn neutral; the colour scale spans the later months."""
    later = [s for row in src.cohorts for s in row.retention[1:] if s is not None]
    peak = max(later, default=0.0) or 1.0
    cells = {}
    for i, row in enumerate(src.cohorts):
        for j, share in enumerate(row.retention):
            if share is None:
                continue
            cells[(i, j)] = HeatCell(
                intensity=share / peak,
                lines=[t.percent(share)],
                tip=f"{t.month(row.cohort)} +{j}: {t.percent(share, 1)} · {t.count(row.size)}",
                fill="#e5e7eb" if j == 0 else None,
            )
    rows = [f"{t.month(r.cohort)} · {t.integer(r.size)}" for r in src.cohorts]
    return heatmap(
        _slug(src.name, "cohorts"),
        t.t("sec_cohorts"),
        rows,
        [str(j) for j in range(src.cohort_periods)],
        cells,
        t.t("axis_period"),
        t.t("axis_cohort"),
        cell_w=58,
        cell_h=24,
        row_room=130,
        legend=(t.percent(0), t.percent(peak)),
    )
