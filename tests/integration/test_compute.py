"""``segsync compute`` against a real store (SQLite, or PostgreSQL with SEGSYNC_TEST_DB): load, engine, persist."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from sqlalchemy import select, text, update

from segsync.compute import persist
from segsync.compute.load import load_source
from segsync.compute.read import customer_state, segment_counts
from segsync.compute.run import compute_source, parse_as_of
from segsync.config import parse_rules
from segsync.sandbox.store_loader import load_world
from segsync.store import make_engine, upgrade
from segsync.store import tables as t

from .compute_world import AS_OF, tiny_world

TEST_DB_IS_SQLITE = os.environ.get("SEGSYNC_TEST_DB", "sqlite") == "sqlite"

RULES = """\
timezone: Europe/Moscow
sources:
  - name: shop
    kind: csv
    path: unused.csv
    columns: {{customer_id: 1, date: 2, amount: 3}}
    header: false
    base_currency: RUB
    customer: {mode}
segments:
  churn: {{min_repeaters: 1}}
  vip: {{where: "abc = 'A'"}}
  custom:
    - {{name: it, where: "industry = 'IT'"}}
"""


def setup(engine, mode: str = "company_else_contact"):
    rules = parse_rules(RULES.format(mode=mode), "rules.yaml", env={})
    source_id = load_world(engine, tiny_world(), source="shop", kind="csv")
    return rules, rules.sources[0], source_id


def labels_of(engine, source_id: int) -> dict[str, dict[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.segment_state.c.customer_kind, t.segment_state.c.customer_id, t.segment_state.c.labels).where(
                t.segment_state.c.source_id == source_id
            )
        )
        return {f"{k}:{r}": labels for k, r, labels in rows}


def test_customers_deals_and_money_load_per_the_customer_option(engine):
    _rules, source, sid = setup(engine)
    with engine.connect() as conn:
        loaded = load_source(conn, sid, source)
    customers = set(loaded.inputs.customers["customer"].to_list())
    # contact 10 works at company 1 and all its deals carry the company: it is not a customer of its own
    assert customers == {"company:1", "company:2", "contact:11", "contact:12", "contact:13", "contact:14"}
    won = loaded.inputs.deals.filter(t_status("won"))
    assert sorted(won["amount"].to_list()) == [1000.0, 1000.0, 2000.0, 5000.0, 100000.0, 100000.0, 100000.0]
    touches = dict(zip(loaded.inputs.touches["customer"], loaded.inputs.touches["at"], strict=True))
    assert set(touches) == {"company:1", "company:2", "contact:12"}  # contact 10's call counts for company 1
    assert loaded.counts["deals_without_customer"] == 0


def t_status(value: str) -> pl.Expr:
    return pl.col("status") == value


def test_amount_falls_back_to_the_currency_rate(engine):
    _rules, source, sid = setup(engine)
    with engine.begin() as conn:
        conn.execute(update(t.deals).where(t.deals.c.remote_id == "102").values(amount_base=None))
        conn.execute(update(t.deals).where(t.deals.c.remote_id == "103").values(amount_base=None, currency="EUR"))
    with engine.connect() as conn:
        deals = load_source(conn, sid, source).inputs.deals
    amounts = dict(zip(deals["customer"] + deals["status"] + deals["amount"].cast(str), deals["amount"], strict=True))
    assert "company:1won100000.0" in amounts  # 1000 USD × 100 from `currencies`
    company2 = deals.filter(t_status("won") & (deals["customer"] == "company:2"))
    assert company2["amount"].to_list() == [None]  # EUR has no rate: unknown, not a guess


@pytest.mark.parametrize("mode", ["contact", "company"])
def test_contact_and_company_modes(engine, mode):
    _rules, source, sid = setup(engine, mode)
    with engine.connect() as conn:
        loaded = load_source(conn, sid, source)
    kinds = set(loaded.inputs.customers["kind"].to_list())
    assert kinds == {mode}
    if mode == "contact":
        assert loaded.counts["deals_without_customer"] == 2  # deals 103, 104 have only a company
        assert "contact:10" in loaded.inputs.deals["customer"].to_list()
    else:
        assert loaded.counts["deals_without_customer"] == 5


def test_compute_persists_labels_features_history_fits_and_the_run(engine):
    rules, source, sid = setup(engine)
    summary = compute_source(engine, rules, source, sid, AS_OF)
    labels = labels_of(engine, sid)
    assert labels["company:1"] == {
        "abc": "A",
        "xyz": "Z",
        "abc_xyz": "AZ",
        "rfm": "cant_lose",
        "rfm_score": "155",
        "lifecycle": "active",
        "churn_risk": labels["company:1"]["churn_risk"],
        "vip": "yes",
        "custom:it": "yes",
    }
    assert labels["contact:12"]["lifecycle"] == "lost" and labels["contact:12"]["churn_flag"] == "yes"
    assert labels["contact:11"] == {"abc": "N", "lifecycle": "lead", "readiness": "hot"}
    assert labels["contact:14"] == {"abc": "N", "lifecycle": "lead", "readiness": "cold"}
    assert labels["contact:13"]["lifecycle"] == "new" and labels["contact:13"]["xyz"] == "once"
    with engine.connect() as conn:
        state = customer_state(conn, "shop", sid, "company", "1")
        run = conn.execute(select(t.runs).where(t.runs.c.id == summary.run_id)).one()
        fits = conn.execute(select(t.model_fits).where(t.model_fits.c.run_id == summary.run_id)).all()
        history = conn.execute(select(t.segment_history).where(t.segment_history.c.run_id == summary.run_id)).all()
        total, counts = segment_counts(conn, sid)
    assert state is not None and state.as_of == AS_OF and state.run_id == summary.run_id
    assert state.features["revenue_window"] == 200000.0 and state.features["industry"] == "IT"
    assert state.features["days_since_touch"] == 3.0
    assert run.step == "compute" and run.status == "ok" and run.finished_at is not None
    assert run.counts["customers"] == 6 and run.counts["labels"]["abc"]["A"] == 1
    assert {f.model for f in fits} == {"mbgnbd", "gamma_gamma"}
    for f in fits:
        assert f.status in ("fitted", "not_fitted")
        assert (f.params.get("r") is not None) == (f.status == "fitted") or f.model == "gamma_gamma"
        assert f.detail
    assert len(history) == sum(len(v) for v in labels.values())  # first run: every label appears from NULL
    assert all(h.from_value is None for h in history)
    assert total == 6 and counts["lifecycle"] == {"active": 1, "lead": 2, "lost": 1, "new": 2}


def test_same_store_rules_and_as_of_give_the_same_state_and_no_transitions(engine):
    rules, source, sid = setup(engine)
    compute_source(engine, rules, source, sid, AS_OF)

    def snapshot():
        with engine.connect() as conn:
            rows = conn.execute(
                select(t.segment_state.c.customer_id, t.segment_state.c.labels, t.segment_state.c.features)
                .where(t.segment_state.c.source_id == sid)
                .order_by(t.segment_state.c.customer_kind, t.segment_state.c.customer_id)
            ).all()
        return [(r[0], json.dumps(r[1], sort_keys=True), json.dumps(r[2], sort_keys=True)) for r in rows]

    before = snapshot()
    second = compute_source(engine, rules, source, sid, AS_OF)
    assert second.counts["transitions"] == 0
    assert snapshot() == before


def test_later_runs_record_transitions_and_removed_customers(engine):
    rules, source, sid = setup(engine)
    compute_source(engine, rules, source, sid, AS_OF)
    with engine.begin() as conn:
        conn.execute(
            update(t.customers)
            .where(t.customers.c.kind == "contact", t.customers.c.remote_id == "14")
            .values(deleted_at=AS_OF)
        )
    later = AS_OF + timedelta(days=200)
    summary = compute_source(engine, rules, source, sid, later)
    with engine.connect() as conn:
        rows = conn.execute(select(t.segment_history).where(t.segment_history.c.run_id == summary.run_id)).all()
    changes = {(r.customer_kind, r.customer_id, r.label): (r.from_value, r.to_value) for r in rows}
    # one purchase 210 days ago, usual cycle = the global median gap of 150 days: 210 ≤ 1.5 × 150 → active
    assert changes[("contact", "13", "lifecycle")] == ("new", "active")
    assert changes[("contact", "14", "lifecycle")] == ("lead", None)  # deleted: its labels end
    assert all(r.as_of == later for r in rows)
    assert "contact:14" not in labels_of(engine, sid)


def test_a_failing_run_is_recorded_and_keeps_the_previous_state(engine, monkeypatch):
    rules, source, sid = setup(engine)
    compute_source(engine, rules, source, sid, AS_OF)
    before = labels_of(engine, sid)

    def boom(*args, **kwargs):
        raise RuntimeError("engine exploded")

    monkeypatch.setattr("segsync.compute.run.write_fits", boom)
    with pytest.raises(RuntimeError):
        compute_source(engine, rules, source, sid, AS_OF + timedelta(days=30))
    with engine.connect() as conn:
        last = conn.execute(select(t.runs).order_by(t.runs.c.id.desc()).limit(1)).one()
        history_runs = conn.execute(text("SELECT DISTINCT run_id FROM segment_history")).scalars().all()
    assert last.status == "failed" and "engine exploded" in last.error
    assert labels_of(engine, sid) == before
    assert last.id not in history_runs


def test_parse_as_of():
    end = parse_as_of("2025-06-30", "Europe/Moscow")
    assert end.isoformat() == "2025-06-30T23:59:59.999999+03:00"
    assert parse_as_of("2025-06-30T10:00:00+00:00", "Europe/Moscow").hour == 10
    assert parse_as_of("2025-06-30T10:00:00", "Europe/Moscow").utcoffset() == timedelta(hours=3)


def test_persisting_waits_for_a_concurrent_writer_instead_of_failing(engine, monkeypatch):
    """The daemon pulls one source while it computes another: on SQLite the compute used to fail at once with
    "database is locked" (found by the crash-anywhere harness) when the pull committed between its read of
    the previous labels and its first write."""
    rules, source, sid = setup(engine)
    read = persist.previous_state

    def read_then_let_another_writer_in(conn, source_id):
        labels = read(conn, source_id)
        writer = threading.Thread(target=lambda: _touch_runs(engine), daemon=True)
        writer.start()
        writer.join(1.0)  # a deferred transaction lets it commit now; an immediate one makes it wait for us
        return labels

    monkeypatch.setattr(persist, "previous_state", read_then_let_another_writer_in)
    summary = compute_source(engine, rules, source, sid, AS_OF)
    assert summary.counts["customers"] > 0 and labels_of(engine, sid)


def _touch_runs(engine) -> None:
    with engine.begin() as conn:
        conn.execute(t.runs.insert().values(step="pull", status="ok", worker="other", started_at=AS_OF))


@pytest.mark.skipif(not TEST_DB_IS_SQLITE, reason="the Arrow read is for SQLite")
def test_arrow_read_matches_the_cursor_read_and_sees_committed_changes(engine):
    """The ADBC child process (used for large SQLite stores) returns the same frames as the DBAPI cursor —
    also after a committed change, which a second SQLite library inside this process would not see."""
    _rules, source, sid = setup(engine)
    with engine.begin() as conn:
        conn.execute(update(t.deals).where(t.deals.c.remote_id == "102").values(amount_base=None))
        conn.execute(
            update(t.customers)
            .where(t.customers.c.kind == "contact", t.customers.c.remote_id == "14")
            .values(deleted_at=AS_OF)
        )
    with engine.connect() as conn:
        by_cursor = load_source(conn, sid, source, arrow=False)
        by_arrow = load_source(conn, sid, source, arrow=True)
    for name in ("deals", "customers", "touches", "stages"):
        assert getattr(by_arrow.inputs, name).equals(getattr(by_cursor.inputs, name)), name
    assert by_arrow.counts == by_cursor.counts
    assert "contact:14" not in by_arrow.inputs.customers["customer"].to_list()


@pytest.mark.skipif(not TEST_DB_IS_SQLITE, reason="rowid ranges are SQLite's")
def test_deals_read_in_rowid_ranges_equal_one_read(engine, monkeypatch):
    """A large store's deals are read in rowid ranges by readers side by side; the pieces put together are
    the one read, row for row and in the same order — also when a range holds a deleted deal or none."""
    from segsync.compute import load

    _rules, source, sid = setup(engine)
    with engine.begin() as conn:
        conn.execute(update(t.deals).where(t.deals.c.remote_id == "102").values(deleted_at=AS_OF))
    with engine.connect() as conn:
        whole = load_source(conn, sid, source, arrow=True)
        monkeypatch.setattr(load, "_ROWS_PER_READ", 3)
        assert len(load._deal_parts(conn)) > 2
        pieces = load_source(conn, sid, source, arrow=True)
    assert pieces.inputs.deals.equals(whole.inputs.deals)
    assert pieces.counts == whole.counts


def test_times_arrive_to_the_millisecond_from_any_store_spelling(engine):
    """Times are moved as epoch values computed by the database; a time written in another spelling than
    the store's own (ISO with a T and an offset) still arrives, in UTC."""
    _rules, source, sid = setup(engine)
    with engine.begin() as conn:
        conn.execute(
            update(t.deals)
            .where(t.deals.c.remote_id == "102")
            .values(closed_at=datetime(2024, 3, 5, 10, 20, 30, 123000, tzinfo=UTC))
        )
        if TEST_DB_IS_SQLITE:
            conn.exec_driver_sql("UPDATE deals SET created_at = '2024-03-01T12:00:00+03:00' WHERE remote_id = '102'")
    with engine.connect() as conn:
        deals = load_source(conn, sid, source).inputs.deals
    row = deals.filter(pl.col("closed_at") == datetime(2024, 3, 5, 10, 20, 30, 123000, tzinfo=UTC))
    assert row.height == 1
    if TEST_DB_IS_SQLITE:
        assert row["created_at"][0] == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def _state_rows(engine, sid):
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                t.segment_state.c.customer_kind,
                t.segment_state.c.customer_id,
                t.segment_state.c.labels,
                t.segment_state.c.features,
                t.segment_state.c.as_of,
            )
            .where(t.segment_state.c.source_id == sid)
            .order_by(t.segment_state.c.customer_kind, t.segment_state.c.customer_id)
        ).all()
    return [tuple(r) for r in rows]


def test_a_first_state_written_in_chunks_is_the_state_written_whole(engine, tmp_path, monkeypatch):
    """A first run writes its state chunk by chunk, each chunk's features made while the one before is written:
    the state is row for row the one written in a single chunk, and every label has its first appearance."""
    rules, source, sid = setup(engine)
    monkeypatch.setattr(persist, "_STATE_CHUNK", 2)
    summary = compute_source(engine, rules, source, sid, AS_OF)
    whole = make_engine(f"sqlite:///{tmp_path / 'whole.db'}")
    upgrade(whole)
    monkeypatch.setattr(persist, "_STATE_CHUNK", 1_000_000)
    rules2, source2, sid2 = setup(whole)
    compute_source(whole, rules2, source2, sid2, AS_OF)
    state = _state_rows(engine, sid)
    assert len(state) > 2 and state == _state_rows(whole, sid2)
    with engine.connect() as conn:
        history = conn.execute(
            select(t.segment_history.c.customer_id, t.segment_history.c.label).where(
                t.segment_history.c.run_id == summary.run_id
            )
        ).all()
    assert sorted(history) == sorted((r[1], label) for r in state for label in r[2])
    assert len(history) == summary.counts["transitions"]


def test_a_rerun_that_changes_a_few_customers_writes_the_same_state_as_a_first_run(engine, tmp_path, monkeypatch):
    """Second run with a lead gone: on SQLite only that row is deleted (the rest only takes the new stamp),
    yet the state is what a first run on the same data writes, and history has just the change."""
    import segsync.compute.persist as persist

    rules, source, sid = setup(engine)
    first = compute_source(engine, rules, source, sid, AS_OF)
    with engine.begin() as conn:
        conn.execute(
            update(t.customers)
            .where(t.customers.c.kind == "contact", t.customers.c.remote_id == "14")
            .values(deleted_at=AS_OF)
        )
    deleted = []
    real_delete = persist._delete_state
    monkeypatch.setattr(
        persist, "_delete_state", lambda c, s, rows: (deleted.append(rows.height), real_delete(c, s, rows))
    )
    second = compute_source(engine, rules, source, sid, AS_OF)
    with engine.connect() as conn:
        history = conn.execute(select(t.segment_history).where(t.segment_history.c.run_id == second.run_id)).all()
        stamps = {r.run_id for r in conn.execute(select(t.segment_state.c.run_id))}
    # same as-of: the rows that did not change keep the stamp of the run that wrote them (SQLite)
    assert stamps == ({first.run_id} if TEST_DB_IS_SQLITE else {second.run_id})
    assert {(h.customer_id, h.to_value) for h in history if h.customer_id == "14"} == {("14", None)}
    assert 0 < len(history) == second.counts["transitions"]
    assert deleted == ([1] if TEST_DB_IS_SQLITE else [])

    fresh = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}") if TEST_DB_IS_SQLITE else engine
    if fresh is engine:
        return  # PostgreSQL rewrites the state every run: nothing incremental to compare
    upgrade(fresh)
    rules2, source2, sid2 = setup(fresh)
    with fresh.begin() as conn:
        conn.execute(
            update(t.customers)
            .where(t.customers.c.kind == "contact", t.customers.c.remote_id == "14")
            .values(deleted_at=AS_OF)
        )
    compute_source(fresh, rules2, source2, sid2, AS_OF)
    assert _state_rows(engine, sid) == _state_rows(fresh, sid2)


def test_base_currency_falls_back_to_the_one_the_connector_recorded(engine):
    """Rules without ``base_currency``: an amount in the currency the connector recorded as the source's base
    counts as is; with no base known anywhere it stays unknown (no rate for it either)."""
    _rules, source, sid = setup(engine)
    unset = source.model_copy(update={"base_currency": None})
    with engine.begin() as conn:
        conn.execute(update(t.deals).where(t.deals.c.remote_id == "102").values(amount_base=None, currency="KZT"))

    def amounts(base: str | None) -> list:
        with engine.begin() as conn:
            conn.execute(update(t.sources).where(t.sources.c.id == sid).values(base_currency=base))
        with engine.connect() as conn:
            deals = load_source(conn, sid, unset).inputs.deals
        return sorted(deals.filter(t_status("won") & (pl.col("customer") == "company:1"))["amount"].to_list(), key=str)

    assert 1000.0 in amounts("KZT")
    assert None in amounts(None)
