"""Rendering the model to HTML (no database): charts present and well-formed, nothing external, both languages."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET

import pytest

from segsync.report.charts import nice_ticks
from segsync.report.i18n import NBSP, Texts
from segsync.report.model import build_report
from segsync.report.render import render_html
from segsync.segments import names

from .fixtures import NOW, SETTINGS, sample_source

CHARTS = ("flow", "revenue", "matrix", "rfm-customers", "rfm-revenue", "net", "cohorts", "tasks", "duplicates")
SVG = "{http://www.w3.org/2000/svg}"


def render(lang: str = "ru") -> str:
    from dataclasses import replace

    report = build_report([sample_source()], replace(SETTINGS, language=lang), NOW)
    return render_html(report, titles={"custom:key_b2b": {"yes": ("Ключевые B2B", "Key B2B")}})


@pytest.fixture(scope="module")
def html_ru() -> str:
    return render("ru")


def charts_of(html: str) -> dict[str, ET.Element]:
    out = {}
    for match in re.finditer(r"<svg .*?</svg>", html, flags=re.S):
        svg = ET.fromstring(match.group(0))  # well-formed XML, or this raises
        out[svg.get("data-chart")] = svg
    return out


def test_every_chart_is_present_with_title_axes_and_marks(html_ru):
    charts = charts_of(html_ru)
    assert set(charts) == {f"shop-{name}" for name in CHARTS}
    for name, svg in charts.items():
        assert svg.find(f"{SVG}title").text, name
        axes = [g for g in svg.iter(f"{SVG}g") if "axis" in (g.get("class") or "")]
        assert axes and any(t.text for g in axes for t in g.iter(f"{SVG}text")), name
        assert any("mark" in (r.get("class") or "") for r in svg.iter(f"{SVG}rect")), name


def test_axis_titles_carry_units(html_ru):
    charts = charts_of(html_ru)
    texts = lambda name: " ".join(t.text or "" for t in charts[f"shop-{name}"].iter(f"{SVG}text"))  # noqa: E731
    assert "Выручка, ₽" in texts("revenue") and "Клиенты, чел." in texts("flow")
    assert "Задачи, шт." in texts("tasks") and "Месяцев после первой покупки" in texts("cohorts")


def test_nothing_is_loaded_from_outside(html_ru):
    assert not re.search(r"""(?:src|href|action|poster)\s*=\s*["'](?!#|data:)""", html_ru)
    assert not re.search(r"url\((?!#)", html_ru)
    assert "@import" not in html_ru
    assert set(re.findall(r"https?://[^\s\"'<>)]+", html_ru)) == {"http://www.w3.org/2000/svg"}
    assert "Content-Security-Policy" in html_ru and "default-src 'none'" in html_ru


def test_customer_text_is_escaped(html_ru):
    assert "<script>alert(1)</script>" not in html_ru
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_ru
    assert html_ru.count("<script>") == 1  # the sorter


def test_names_managers_and_money_in_russian(html_ru):
    assert '<html lang="ru">' in html_ru and "Отчёт по клиентской базе" in html_ru
    assert "АО «Вектор»" in html_ru and "Михаил Орлов" in html_ru and "Ключевые B2B" in html_ru
    assert f"240{NBSP}₽" in html_ru  # value at risk of АО «Вектор»
    assert "Управление" not in html_ru and "Customer base report" not in html_ru


def test_segments_are_named_as_on_the_crm_tags_with_the_admins_titles(html_ru):
    titles = {"rfm": {"champions": ("Лучшие", None)}, "custom:key_b2b": {"yes": ("Ключевые B2B", "Key B2B")}}
    ru, en = Texts("ru", "UTC", titles), Texts("en", "UTC", titles)
    assert ru.value("rfm", "champions") == "Лучшие" and en.value("rfm", "champions") == "Champions"
    assert ru.value("custom:key_b2b", "yes") == "Ключевые B2B" and en.value("custom:key_b2b", "yes") == "Key B2B"
    for label, value in (("abc", "A"), ("xyz", "once"), ("churn_risk", "high"), ("lifecycle", "lapsed")):
        assert ru.value(label, value) == names.display(label, value, "ru"), (label, value)
    assert ru.value("abc", None) == "(нет)" and ru.value("xyz", "") == "—" and ru.label("rfm") == "RFM-сегмент"
    assert "Пора реактивировать: <b>" in html_ru and "Ключевые B2B: <b>" in html_ru  # the rule-segment pills


def test_english():
    html = render("en")
    assert '<html lang="en">' in html and "Customer base report" in html and "Churn risk" in html
    assert "Клиентов в анализе" not in html and "Отчёт" not in html
    assert "Key B2B" in html and "Champions" in html


def test_formats():
    ru, en = Texts("ru", "UTC"), Texts("en", "UTC")
    assert (
        ru.money(1234567.4, "RUB") == f"1{NBSP}234{NBSP}567{NBSP}₽" and en.money(1234567, "USD") == f"1,234,567{NBSP}$"
    )
    assert (
        ru.compact(1_250_000) == f"1,2{NBSP}млн" and en.compact(1_250_000) == "1.2M" and en.compact(350_000) == "350K"
    )
    assert [ru.count(n) for n in (1, 2, 5, 11, 21, 112)] == [
        "1 клиент", "2 клиента", "5 клиентов", "11 клиентов", "21 клиент", "112 клиентов"
    ]  # fmt: skip
    assert en.count(1) == "1 customer" and en.count(3) == "3 customers"
    assert ru.percent(0.256) == f"26{NBSP}%" and en.percent(0.256) == "26%"
    assert ru.month("2025-05") == "май 25" and en.month("2025-05") == "May 25"
    assert ru.moment(NOW) == "16.06.2025 09:00"


@pytest.mark.parametrize(("lo", "hi"), [(0, 7), (0, 1), (-17, 23), (0, 4_327_408), (0, 0), (-3, 0)])
def test_nice_ticks_cover_the_range(lo, hi):
    ticks = nice_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi and len(ticks) <= 8
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1


def test_sorting_script_and_sortable_tables(html_ru):
    assert html_ru.count('class="sortable"') >= 5
    assert 'addEventListener("click"' in html_ru
