"""The `csv` source kind: pull() of customers and won deals, rejected rows, read-only writes, and CDNOW.

CDNOW: the published BG/NBD and Gamma-Gamma estimates come from the 2,357-customer sample over the 39-week
calibration period (1997-01-01 … 1997-09-30). Here the full ``CDNOW_master.txt`` goes through the CSV
connector, the sample's customers are kept, and the engine's features feed the fits.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import lifetimes
import numpy as np
import pandas as pd
import polars as pl
import pytest

from connectors.csvfile.options import CsvSource
from connectors.csvfile.reader import CsvConnector
from segsync.config import parse_rules
from segsync.contract import Connector, CustomerRef, LabelChange
from segsync.errors import FatalCrmError
from segsync.registry import connector_specs
from segsync.segments import btyd
from segsync.segments.features import features

DATA = Path(lifetimes.__file__).parent / "datasets"


def source(path: Path, **options) -> CsvSource:
    base = {
        "name": "file",
        "kind": "csv",
        "path": str(path),
        "columns": {"customer_id": "client", "date": "date", "amount": "sum"},
    }
    return CsvSource.model_validate(base | options)


async def pull_all(connector: CsvConnector, entity: str, cursor=None, full: bool = False):
    pages = [page async for page in connector.pull(entity, cursor, full=full)]
    return pages


def test_registered_as_a_connector_kind_and_in_the_rules_schema():
    assert connector_specs()["csv"].source_model is CsvSource
    rules = parse_rules(
        "sources:\n  - {name: f, kind: csv, path: x.csv, header: false,\n"
        "     columns: {customer_id: 1, date: 2, amount: 3}}\n",
        "r.yaml",
        env={},
    )
    assert rules.sources[0].kind == "csv"
    assert isinstance(CsvConnector(rules.sources[0]), Connector)


def test_options_are_validated():
    with pytest.raises(ValueError, match="by number"):
        source(Path("x"), header=False)
    with pytest.raises(ValueError, match="one character"):
        source(Path("x"), delimiter=";;")


def test_pull_reads_customers_and_won_deals_and_rejects_bad_rows(tmp_path):
    path = tmp_path / "deals.csv"
    path.write_text(
        "client;date;sum;name;phone;mail;id\n"
        "42;05.03.2024;12 500,50;Иван;8 (916) 123-45-67;Ivan@Mail.RU;A1\n"
        "42;06.03.2024;1,00;;;;A2\n"
        "7;31.02.2024;100;;;;B1\n"
        ";01.03.2024;100;;;;B2\n"
        "7;01.03.2024;сто;;;;B3\n"
        "7;01.03.2024;5;Пётр;;;A1\n"
        "7;02.03.2024;5;Пётр;;;\n",
        encoding="utf-8",
    )
    src = source(
        path,
        delimiter=";",
        date_format="%d.%m.%Y",
        decimal_comma=True,
        columns={
            "customer_id": "client",
            "date": "date",
            "amount": "sum",
            "name": "name",
            "phone": "phone",
            "email": "mail",
            "deal_id": "id",
        },
        page_size=2,
        base_currency="RUB",
    )
    connector = CsvConnector(src)
    assert connector.entities() == ("contacts", "deals")
    contacts = asyncio.run(pull_all(connector, "contacts"))
    people = {c.remote_id: c for page in contacts for c in page.records}
    assert set(people) == {"42", "7"}
    assert people["42"].name == "Иван" and people["42"].phones == ["+79161234567"]
    assert people["42"].emails == ["ivan@mail.ru"]
    deals_pages = asyncio.run(pull_all(connector, "deals"))
    deals = [d for page in deals_pages for d in page.records]
    assert [d.remote_id for d in deals] == ["A1", "A2", "L8"]
    assert deals[0].amount == deals[0].amount_base and str(deals[0].amount) == "12500.50"
    assert deals[0].status == "won" and deals[0].contact_ids == ["42"] and deals[0].currency == "RUB"
    assert deals[0].closed_at == datetime(2024, 3, 5, 12, tzinfo=UTC)
    rejected = [r for page in deals_pages for r in page.rejected]
    reasons = sorted(r.reason for r in rejected)
    assert len(reasons) == 4
    assert any("does not match %d.%m.%Y" in r for r in reasons)
    assert any("no customer id" in r for r in reasons)
    assert any("is not a number" in r for r in reasons)
    assert any("repeats an earlier row" in r for r in reasons)
    cursor = deals_pages[-1].cursor
    assert cursor and len(cursor["sha256"]) == 64
    assert asyncio.run(pull_all(connector, "deals", cursor)) == []  # unchanged file: nothing to pull
    assert len(asyncio.run(pull_all(connector, "deals", cursor, full=True))) == 2


def test_companies_and_ids_listing(tmp_path):
    path = tmp_path / "b2b.csv"
    path.write_text("1,2024-01-01,10\n2,2024-01-02,20\n", encoding="utf-8")
    src = CsvSource.model_validate(
        {
            "name": "b",
            "kind": "csv",
            "path": str(path),
            "header": False,
            "customer_kind": "company",
            "columns": {"customer_id": 1, "date": 2, "amount": 3},
        }
    )
    connector = CsvConnector(src)
    assert connector.entities() == ("companies", "deals")
    deals = [d for p in asyncio.run(pull_all(connector, "deals")) for d in p.records]
    assert [d.company_id for d in deals] == ["1", "2"] and deals[0].contact_ids == []

    async def ids():
        return [chunk async for chunk in connector.list_ids("companies")]

    assert asyncio.run(ids()) == [["1", "2"]]


def test_writes_are_refused_clearly(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("client,date,sum\n1,2024-01-01,1\n", encoding="utf-8")
    connector = CsvConnector(source(path))
    change = LabelChange(key="k", customer=CustomerRef("contact", "1"), before={}, after={"abc": "A"})
    with pytest.raises(FatalCrmError, match="cannot be written back"):
        asyncio.run(connector.set_labels([change]))
    with pytest.raises(FatalCrmError, match="cannot be written back"):
        asyncio.run(connector.create_tasks([]))
    with pytest.raises(FatalCrmError, match="not found"):
        CsvConnector(source(tmp_path / "missing.csv")).parse()
    with pytest.raises(FatalCrmError, match="not in the header"):
        CsvConnector(source(path, columns={"customer_id": "who", "date": "date", "amount": "sum"})).parse()


@pytest.fixture(scope="module")
def cdnow_features() -> pl.DataFrame:
    src = CsvSource.model_validate(
        {
            "name": "cdnow",
            "kind": "csv",
            "path": str(DATA / "CDNOW_master.txt"),
            "delimiter": "whitespace",
            "date_format": "%Y%m%d",
            "columns": {"customer_id": "customer_id", "date": "date", "amount": "dollar_value"},
        }
    )
    connector = CsvConnector(src)
    deals = [d for page in asyncio.run(pull_all(connector, "deals")) for d in page.records]
    assert len(deals) == 69_659
    lines = (DATA / "CDNOW_sample.txt").read_text().split()
    ids = {lines[i]: lines[i + 1] for i in range(0, len(lines), 5)}  # master id → sample id
    frame = pl.DataFrame(
        {
            "customer": [d.contact_ids[0] for d in deals],
            "status": "won",
            "amount": [float(d.amount_base) for d in deals],
            "closed_at": [d.closed_at for d in deals],
        }
    ).filter(pl.col("customer").is_in(list(ids)))
    frame = frame.with_columns(pl.col("customer").replace_strict(ids).cast(pl.Int64).cast(pl.String))
    calibration_end = datetime(1997, 9, 30, 23, 59, tzinfo=UTC)
    return features(frame, calibration_end, tz="UTC")


def test_cdnow_customers_match_the_published_summary(cdnow_features):
    summary = pl.read_csv(DATA / "cdnow_customers_summary_with_transactions.csv").with_columns(
        pl.col("ID").cast(pl.String).alias("customer")
    )
    joined = summary.join(cdnow_features, on="customer")
    assert joined.height == 2357
    assert (joined["x"] == joined["_x"]).all()
    assert (joined["t_x"] - joined["_t_x"] / 7).abs().max() < 0.006  # the summary rounds weeks to 2 places
    assert (joined["T"] - joined["_T"] / 7).abs().max() < 0.006
    assert (joined["zbar"] - joined["_m_x"].fill_null(0.0)).abs().max() < 0.006


def test_cdnow_bgnbd_and_gamma_gamma_reproduce_the_published_estimates(cdnow_features):
    x = cdnow_features["_x"].to_numpy()
    weeks_t, weeks_T = cdnow_features["_t_x"].to_numpy() / 7, cdnow_features["_T"].to_numpy() / 7
    fit = btyd.fit_bgnbd(x, weeks_t, weeks_T)
    for name, published in {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}.items():
        assert fit.params[name] == pytest.approx(published, rel=0.01), name
    assert fit.log_likelihood == pytest.approx(-9582.4, abs=0.05)
    in_days = btyd.fit_bgnbd(x, weeks_t * 7, weeks_T * 7)  # the engine's unit: α scales, r, a, b do not
    assert in_days.params["alpha"] / 7 == pytest.approx(fit.params["alpha"], rel=1e-4)
    assert in_days.params["r"] == pytest.approx(fit.params["r"], rel=1e-4)
    spend = btyd.fit_gamma_gamma(x, cdnow_features["_m_x"].fill_null(np.nan).to_numpy())
    for name, published in {"p": 6.25, "q": 3.74, "gamma": 15.44}.items():
        assert spend.params[name] == pytest.approx(published, rel=0.01), name
    # P(alive) on the same parameters equals lifetimes
    fitter = lifetimes.BetaGeoFitter()
    fitter.params_ = pd.Series(fit.params)
    theirs = np.asarray(fitter.conditional_probability_alive(x, weeks_t, weeks_T))
    np.testing.assert_allclose(btyd.p_alive("bgnbd", fit.values(), x, weeks_t, weeks_T), theirs, atol=1e-6, rtol=0)
