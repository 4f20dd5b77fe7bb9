"""The pull orchestrator against a scripted in-memory connector and a real store."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from segsync.app import ensure_sources
from segsync.config.sources import SourceBase
from segsync.contract import Customer, Deal, Page, Rejected
from segsync.store import tables as t
from segsync.sync import pull_source, reconcile_source

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class ScriptedConnector:
    """Serves fixed pages; records which cursors it was asked for."""

    def __init__(self, pages: dict[str, list[Page]], ids: dict[str, list[str]] | None = None, fail_after=None):
        self.pages = pages
        self.ids = ids or {}
        self.cursors_seen: dict[str, object] = {}
        self.fail_after = fail_after

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None

    def entities(self):
        return [e for e in ("currencies", "companies", "contacts", "deals") if e in self.pages or e in self.ids]

    async def pull(self, entity, cursor, *, full=False):
        self.cursors_seen[entity] = cursor
        for i, page in enumerate(self.pages.get(entity, [])):
            if self.fail_after is not None and (entity, i) == self.fail_after:
                raise RuntimeError("connection lost")
            yield page

    async def list_ids(self, entity):
        yield self.ids.get(entity, [])

    async def deletions(self, cursor):
        if False:
            yield


def _contact(i: int, name: str = "x") -> Customer:
    return Customer(kind="contact", remote_id=str(i), name=name, updated_at=T0)


def _source_id(engine) -> int:
    return ensure_sources(engine, [SourceBase(name="s", kind="fake")])["s"]


async def test_pages_land_with_cursor_and_quarantine(engine):
    sid = _source_id(engine)
    deal = Deal(remote_id="9", status="won", amount=Decimal("12500.50"), contact_ids=["1", "2"], closed_at=T0)
    conn = ScriptedConnector(
        {
            "contacts": [
                Page("contacts", [_contact(1), _contact(2)], cursor={"id": 2}),
                Page("contacts", [_contact(3)], [Rejected("contacts", "4", "bad date", {"ID": "4"})], cursor={"id": 4}),
            ],
            "deals": [Page("deals", [deal], cursor={"id": 9})],
        }
    )
    result = await pull_source(engine, sid, conn)
    assert result.counts["contacts"]["upserted"] == 3
    assert result.counts["contacts"]["quarantined"] == 1
    assert result.changed
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(t.customers)).scalar_one() == 3
        row = c.execute(select(t.deals)).one()
        assert row.amount == Decimal("12500.50") and row.contact_id == "1" and row.closed_at == T0
        assert c.execute(select(t.cursors.c.state).where(t.cursors.c.stream == "contacts")).scalar_one() == {"id": 4}
        assert c.execute(select(t.quarantine.c.reason)).scalar_one() == "bad date"
    # the next run starts from the saved cursors
    again = ScriptedConnector({"contacts": [], "deals": []})
    await pull_source(engine, sid, again)
    assert again.cursors_seen == {"contacts": {"id": 4}, "deals": {"id": 9}}


async def test_rereading_unchanged_rows_is_not_a_change(engine):
    sid = _source_id(engine)
    first = await pull_source(engine, sid, ScriptedConnector({"contacts": [Page("contacts", [_contact(1)])]}))
    assert first.changed and first.counts["contacts"]["changed"] == 1
    overlap = await pull_source(engine, sid, ScriptedConnector({"contacts": [Page("contacts", [_contact(1)])]}))
    assert overlap.counts["contacts"] == {**overlap.counts["contacts"], "upserted": 1, "changed": 0}
    assert not overlap.changed
    edited = await pull_source(engine, sid, ScriptedConnector({"contacts": [Page("contacts", [_contact(1, "y")])]}))
    assert edited.changed


async def test_a_fixed_record_leaves_quarantine(engine):
    sid = _source_id(engine)
    bad = Page("contacts", [], [Rejected("contacts", "4", "bad date", {"ID": "4"})], cursor={"id": 4})
    await pull_source(engine, sid, ScriptedConnector({"contacts": [bad]}))
    await pull_source(engine, sid, ScriptedConnector({"contacts": [Page("contacts", [_contact(4)], cursor={"id": 5})]}))
    with engine.connect() as c:
        assert c.execute(select(t.quarantine.c.resolved_at)).scalar_one() is not None


async def test_crash_mid_pull_keeps_committed_pages_only(engine):
    sid = _source_id(engine)
    pages = [Page("contacts", [_contact(1)], cursor={"id": 1}), Page("contacts", [_contact(2)], cursor={"id": 2})]
    with pytest.raises(RuntimeError):
        await pull_source(engine, sid, ScriptedConnector({"contacts": pages}, fail_after=("contacts", 1)))
    with engine.connect() as c:
        assert c.execute(select(t.cursors.c.state)).scalar_one() == {"id": 1}
        assert c.execute(select(t.runs.c.status)).scalar_one() == "failed"


async def test_reconcile_marks_missing_and_refuses_mass_delete(engine):
    sid = _source_id(engine)
    await pull_source(
        engine, sid, ScriptedConnector({"contacts": [Page("contacts", [_contact(i) for i in range(1, 11)])]})
    )
    counts = await reconcile_source(
        engine, sid, ScriptedConnector({}, ids={"contacts": [str(i) for i in range(1, 10)]})
    )
    assert counts["contacts"]["deleted"] == 1
    counts = await reconcile_source(engine, sid, ScriptedConnector({}, ids={"contacts": ["1"]}))
    assert counts["contacts"]["refused"] == 8 and counts["contacts"]["deleted"] == 0
    counts = await reconcile_source(
        engine, sid, ScriptedConnector({}, ids={"contacts": [str(i) for i in range(1, 11)]})
    )
    assert counts["contacts"]["restored"] == 1


async def test_the_crms_base_currency_is_recorded_on_the_source(engine):
    from segsync.contract import Currency

    sid = _source_id(engine)
    rates = [Currency("USD", Decimal("92.5")), Currency("RUB", Decimal("1"), is_base=True)]
    await pull_source(engine, sid, ScriptedConnector({"currencies": [Page("currencies", rates)]}))
    with engine.connect() as c:
        assert c.execute(select(t.sources.c.base_currency).where(t.sources.c.id == sid)).scalar_one() == "RUB"


async def test_nul_characters_from_the_crm_are_dropped_not_fatal(engine):
    """Found by tests/reliability/test_malformed_pull.py: PostgreSQL refused the whole page."""
    sid = _source_id(engine)
    named = Customer(
        kind="contact", remote_id="1", name="Ан\x00на", updated_at=T0, raw={"NAME": "Ан\x00на", "k\x00": 1}
    )
    bad = Rejected("contacts", "2", "date 'x\x00' is not ISO 8601", {"ID": "2", "DATE_CREATE": "x\x00"})
    await pull_source(engine, sid, ScriptedConnector({"contacts": [Page("contacts", [named], [bad])]}))
    with engine.connect() as c:
        assert c.execute(select(t.customers.c.name, t.customers.c.raw)).one() == ("Анна", {"NAME": "Анна", "k": 1})
        assert c.execute(select(t.quarantine.c.reason, t.quarantine.c.raw)).one() == (
            "date 'x' is not ISO 8601", {"ID": "2", "DATE_CREATE": "x"},
        )  # fmt: skip
