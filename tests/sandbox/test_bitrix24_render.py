"""Column-at-a-time rendering of the Bitrix24 emulator gives exactly what value-by-value rendering gives,
and every write shows on the next read (nothing rendered is kept between requests).

The reference below renders each value on its own with ``datetime`` (the obvious, slow way); the
emulator renders whole page columns with numpy for speed (bench/sandbox_serve.py).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segsync.sandbox.bitrix24 import Bitrix24Options, Bitrix24Portal
from segsync.sandbox.bitrix24.clock import NULL, Clock
from segsync.sandbox.bitrix24.render import render_rows
from segsync.sandbox.bitrix24.table import EntityTable, uf_camel
from segsync.sandbox.data import generate_world

OFFSETS = [3.0, 0.0, -5.0, 5.5, 5.75, 12.0, -9.5]
EPOCHS = st.one_of(st.just(NULL), st.integers(-2_000_000_000, 4_000_000_000))


# -- dates --------------------------------------------------------------------------------------------
def ref_iso(clock: Clock, ts: int) -> str | None:
    return None if ts == NULL else datetime.fromtimestamp(ts, clock.tz).isoformat()


def ref_day(clock: Clock, ts: int) -> str | None:
    if ts == NULL:
        return None
    d = datetime.fromtimestamp(ts, clock.tz).date()
    return datetime(d.year, d.month, d.day, tzinfo=UTC).astimezone(clock.tz).isoformat()


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(OFFSETS), st.lists(EPOCHS, max_size=60))
def test_date_columns_match_value_by_value_rendering(offset, values):
    clock = Clock(offset)
    arr = np.array(values, dtype=np.int64)
    assert clock.iso_column(arr) == [ref_iso(clock, v) for v in values]
    assert clock.day_column(arr) == [ref_day(clock, v) for v in values]
    assert [clock.iso(v) for v in values if v != NULL] == [ref_iso(clock, v) for v in values if v != NULL]


def test_day_boundaries_follow_the_portal_zone():
    clock = Clock(3.0)
    # 2024-08-30T21:00:00Z is already 31 August in Moscow
    ts = int(datetime.fromisoformat("2024-08-30T21:00:00+00:00").timestamp())
    assert clock.iso_column(np.array([ts, ts - 1])) == ["2024-08-31T00:00:00+03:00", "2024-08-30T23:59:59+03:00"]
    assert clock.day_column(np.array([ts, ts - 1])) == ["2024-08-31T03:00:00+03:00", "2024-08-30T03:00:00+03:00"]


def test_date_fields_render_like_the_documented_samples():
    """shared/api/bitrix24.md §4.4: crm.deal.get on a +02:00 portal gives "BEGINDATE": "2024-08-30T02:00:00+02:00"
    beside "DATE_CREATE": "2024-08-30T14:29:00+02:00"; §9: a real crm.item.list date "2024-04-19T03:00:00+03:00"."""
    created = int(datetime.fromisoformat("2024-08-30T14:29:00+02:00").timestamp())
    assert Clock(2.0).iso(created) == "2024-08-30T14:29:00+02:00"
    assert Clock(2.0).day(created) == "2024-08-30T02:00:00+02:00"
    assert Clock(2.0).day_column(np.array([created])) == ["2024-08-30T02:00:00+02:00"]
    moscow = int(datetime.fromisoformat("2024-04-19T23:30:00+03:00").timestamp())
    assert Clock(3.0).day_column(np.array([moscow])) == ["2024-04-19T03:00:00+03:00"]


# -- whole rows ---------------------------------------------------------------------------------------
def ref_rows(t: EntityTable, rows: list[int], names: list[str], item: bool) -> list[dict[str, Any]]:
    """The rendering spelled out value by value (what render_rows must reproduce)."""
    out = []
    for r in rows:
        d: dict[str, Any] = {}
        for name in names:
            if name in t.multi:
                items = t.multi[name][r]
                if not items:
                    continue
                if item:
                    d.setdefault("fm", []).extend(
                        {"id": int(x["ID"]), "typeId": x["TYPE_ID"], "valueType": x["VALUE_TYPE"], "value": x["VALUE"]}
                        for x in items
                    )
                else:
                    d[name] = [dict(x) for x in items]
                continue
            if name.startswith("UF_"):
                d[uf_camel(name) if item else name] = t.uf.get(name, {}).get(r)
                continue
            f = t.fields[name]
            key = f.camel if item else f.name
            if f.kind == "const":
                d[key] = f.const
                continue
            v = t.cols[f.column][r]
            if f.kind in ("id", "int"):
                d[key] = None if v == NULL else (int(v) if item else str(int(v)))
            elif f.kind == "date":
                d[key] = ref_iso(t.clock, int(v))
            elif f.kind == "day":
                d[key] = ref_day(t.clock, int(v))
            elif f.kind == "money":
                d[key] = float(t.cols[f.column + "#num"][r]) if item else v
            elif f.kind == "yn":
                d[key] = "Y" if v else "N"
            else:
                d[key] = v
        out.append(d)
    return out


@pytest.fixture(scope="module")
def portal() -> Bitrix24Portal:
    p = Bitrix24Portal(generate_world(seed=3, size="tiny"), options=Bitrix24Options(timezone_offset_hours=5.5))
    t = p.contacts
    t.uf["UF_CRM_SEGMENT"] = {0: "A", 3: "B", 7: None}
    t.uf["UF_CRM_TAGS"] = {2: ["1", "2"]}
    t.multi["PHONE"][1] = None  # a contact without phones: no PHONE key in its row
    t.multi["EMAIL"][4] = None
    t.cols["DATE_MODIFY"][5] = NULL
    return p


@pytest.mark.parametrize("entity", ["contact", "company", "deal", "activity"])
@pytest.mark.parametrize("item", [False, True])
def test_rows_match_value_by_value_rendering(portal, entity, item):
    t = portal.table(entity)
    names = [*t.fields, *t.uf, *t.multi]
    sample = np.random.default_rng(7).choice(len(t), min(50, len(t)), replace=False)
    for rows in ([], [0], list(range(12)), sorted(sample.tolist()), [9, 2, 5]):
        got = render_rows(t, np.array(rows, dtype=np.int64), names, item=item)
        want = ref_rows(t, rows, names, item)
        assert got == want
        assert [list(d) for d in got] == [list(d) for d in want]  # same key order too


def test_a_subset_of_fields_keeps_the_asked_order(portal):
    t = portal.contacts
    names = ["ID", "PHONE", "DATE_MODIFY", "UF_CRM_SEGMENT", "EMAIL", "NAME"]
    rows = list(range(8))
    got = render_rows(t, np.array(rows), names)
    assert got == ref_rows(t, rows, names, False)
    assert [list(d) for d in got] == [list(d) for d in ref_rows(t, rows, names, False)]


# -- writes show on the next read ---------------------------------------------------------------------
@pytest.fixture
def sb(sandbox_factory):
    return sandbox_factory(b24_options={"real_delays": False})


def call(hook: str, method: str, **params: Any) -> Any:
    r = httpx.post(hook + method + ".json", json=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["result"]


def test_deal_dates_over_http_have_the_documented_shape(sb):
    hook = sb.info["bitrix24"]["webhook_url"]
    deal = call(hook, "crm.deal.get", id=1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT03:00:00\+03:00", deal["BEGINDATE"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT03:00:00\+03:00", deal["CLOSEDATE"])
    item = call(hook, "crm.item.get", entityTypeId=2, id=1)["item"]
    assert (item["begindate"], item["closedate"]) == (deal["BEGINDATE"], deal["CLOSEDATE"])


def test_updates_and_admin_edits_show_in_the_next_list_page(sb):
    hook = sb.info["bitrix24"]["webhook_url"]
    page = {"order": {"ID": "ASC"}, "filter": {"<=ID": 3}, "start": -1}
    before = call(hook, "crm.deal.list", select=["ID", "TITLE", "CLOSEDATE", "OPPORTUNITY", "DATE_MODIFY"], **page)
    assert call(
        hook, "crm.deal.update", id=2, fields={"TITLE": "Новое имя", "CLOSEDATE": "2031-01-15", "OPPORTUNITY": "12.5"}
    )
    after = call(hook, "crm.deal.list", select=["ID", "TITLE", "CLOSEDATE", "OPPORTUNITY", "DATE_MODIFY"], **page)
    assert after[0] == before[0] and after[2] == before[2]
    assert after[1]["TITLE"] == "Новое имя" and after[1]["CLOSEDATE"] == "2031-01-15T03:00:00+03:00"
    assert after[1]["OPPORTUNITY"] == "12.50" and after[1]["DATE_MODIFY"] != before[1]["DATE_MODIFY"]
    items = call(hook, "crm.item.list", entityTypeId=2, filter={"id": 2}, select=["id", "title", "opportunity"])
    assert items["items"] == [{"id": 2, "title": "Новое имя", "opportunity": 12.5}]

    path = "/b24/portal/_admin/entities/deal/3"
    sb.admin("POST", path, {"TITLE": "Правка менеджера", "CLOSED": "Y"})
    row = call(hook, "crm.deal.list", select=["ID", "TITLE", "CLOSED"], filter={"ID": 3})[0]
    assert row == {"ID": "3", "TITLE": "Правка менеджера", "CLOSED": "Y"}


def test_new_user_fields_phones_and_created_entities_show_in_the_next_list_page(sb):
    hook = sb.info["bitrix24"]["webhook_url"]
    select = ["ID", "PHONE", "UF_*"]
    first = call(hook, "crm.contact.list", select=select, filter={"ID": 1})[0]
    assert not any(k.startswith("UF_") for k in first)
    call(hook, "crm.contact.userfield.add", fields={"FIELD_NAME": "SEGMENT", "USER_TYPE_ID": "string"})
    assert call(hook, "crm.contact.list", select=select, filter={"ID": 1})[0]["UF_CRM_SEGMENT"] is None
    call(hook, "crm.contact.update", id=1, fields={"UF_CRM_SEGMENT": "A", "PHONE": [{"VALUE": "+7 900 000-00-01"}]})
    row = call(hook, "crm.contact.list", select=select, filter={"ID": 1})[0]
    assert row["UF_CRM_SEGMENT"] == "A" and row["PHONE"][-1]["VALUE"] == "+7 900 000-00-01"
    item = call(hook, "crm.item.list", entityTypeId=3, filter={"id": 1}, select=["*"])["items"][0]
    assert item["ufCrmSegment"] == "A" and "+7 900 000-00-01" in [x["value"] for x in item["fm"]]

    created = sb.admin("POST", "/b24/portal/_admin/entities/contact", {"NAME": "Новый", "PHONE": [{"VALUE": "1"}]})
    last = call(hook, "crm.contact.list", order={"ID": "DESC"}, select=["ID", "NAME", "PHONE"], start=-1)[0]
    assert last["ID"] == created["ID"] and last["NAME"] == "Новый" and last["PHONE"][0]["VALUE"] == "1"


def test_contact_ids_of_a_page_match_the_links_row_by_row():
    portal = Bitrix24Portal(generate_world(seed=3, size="tiny"))

    def one(row: int) -> list[int]:
        deal_id = int(portal.deals.ids[row])
        if deal_id in portal.deal_contact_override:
            return portal.deal_contact_override[deal_id]
        if row + 1 >= portal.deal_contact_offsets.size:
            return []
        a, b = portal.deal_contact_offsets[row], portal.deal_contact_offsets[row + 1]
        return portal.deal_contact_ids[a:b].tolist()

    n = len(portal.deals)
    assert any(len(one(r)) > 1 for r in range(n)) and any(not one(r) for r in range(n))
    portal.deal_contact_override[int(portal.deals.ids[4])] = [7, 8]
    new_row = portal.deals.append(portal.next_id(portal.deals))  # created after the build: no links
    for rows in ([], [0], list(range(n)), [new_row, 4, 0, 4]):
        assert portal.deal_contacts_page(np.array(rows, dtype=np.int64)) == [one(r) for r in rows]
