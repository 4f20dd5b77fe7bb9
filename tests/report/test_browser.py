"""The report file opened in headless Chromium (Debian's ``chromium``): no console errors, no network requests,
every chart drawn, tables sort; screenshots saved under ``artifacts/`` for CI and for a human look.

Needs ``apt-get install -y chromium``; without it the test is skipped locally and fails in CI.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from segsync.config.models import Rules
from segsync.config.sources import SourceBase
from segsync.report import render_report

from .browser import chromium_path, open_page
from .builder import AS_OF, build_store

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
EXPECTED = {"flow", "revenue", "matrix", "rfm-customers", "rfm-revenue", "net", "cohorts", "tasks", "duplicates"}

CHECK = """
(() => Array.from(document.querySelectorAll('svg.chart')).map(svg => {
  const box = svg.getBoundingClientRect();
  return {
    id: svg.dataset.chart,
    width: box.width, height: box.height,
    title: (svg.querySelector('title') || {}).textContent || '',
    marks: svg.querySelectorAll('.mark').length,
    visibleMarks: Array.from(svg.querySelectorAll('.mark')).filter(m => m.getBBox().width > 0).length,
    axisTexts: Array.from(svg.querySelectorAll('g.axis text')).filter(t => t.textContent.trim()).length,
  };
}))()
"""

SORT = """
(() => {
  const table = document.querySelector('#shop-churn table.sortable');
  const head = Array.from(table.tHead.rows[0].cells).findIndex(th => th.textContent.includes('Выручка'));
  const values = () => Array.from(table.tBodies[0].rows).map(r => parseFloat(r.cells[head].dataset.v));
  table.tHead.rows[0].cells[head].click();
  const up = values();
  table.tHead.rows[0].cells[head].click();
  const down = values();
  return {up, down, state: table.tHead.rows[0].cells[head].getAttribute('aria-sort')};
})()
"""


@pytest.fixture
def report_file(engine, tmp_path) -> Path:
    build_store(engine, customers=600, seed=5)
    rules = Rules(sources=[SourceBase(name="shop", kind="bitrix24")])
    path = tmp_path / "report.html"
    path.write_text(render_report(engine, rules, now=AS_OF + timedelta(hours=1)), encoding="utf-8")
    return path


def test_report_in_headless_chromium(report_file):
    if chromium_path() is None:
        if IN_CI:
            pytest.fail("chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    url = report_file.as_uri()
    ARTIFACTS.mkdir(exist_ok=True)
    with open_page(width=1366, height=900) as page:
        page.send("Page.navigate", {"url": url})
        page.wait_for("Page.loadEventFired")
        page.settle(1.0)
        charts = page.evaluate(CHECK)
        sort = page.evaluate(SORT)
        page.screenshot(ARTIFACTS / "report-ru.png", full_page=False)
        page.screenshot(ARTIFACTS / "report-ru-full.png", full_page=True)
        page.settle(0.3)

        requests = [p["request"]["url"] for p in page.of("Network.requestWillBeSent")]
        assert requests == [url], f"unexpected requests: {requests}"
        console = [p for p in page.of("Runtime.consoleAPICalled") if p["type"] in ("error", "warning", "assert")]
        assert not console, json.dumps(console, ensure_ascii=False)[:2000]
        assert not page.of("Runtime.exceptionThrown")
        logged = [p["entry"] for p in page.of("Log.entryAdded") if p["entry"]["level"] in ("error", "warning")]
        assert not logged, logged

    drawn = {c["id"].removeprefix("shop-"): c for c in charts}
    assert set(drawn) == EXPECTED
    for name, chart in drawn.items():
        assert chart["width"] > 200 and chart["height"] > 80, (name, chart)
        assert chart["title"] and chart["axisTexts"] >= 2, (name, chart)
        assert chart["marks"] > 0 and chart["visibleMarks"] > 0, (name, chart)
    assert sort["up"] == sorted(sort["up"]) and sort["down"] == sorted(sort["down"], reverse=True)
    assert sort["state"] == "descending" and len(sort["up"]) == 50
    assert (ARTIFACTS / "report-ru.png").stat().st_size > 10_000
