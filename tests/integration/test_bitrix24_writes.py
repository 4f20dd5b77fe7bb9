"""Bitrix24 write operations against the sandbox, checked through its admin API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from segsync.contract import CustomerRef, LabelChange, TaskRequest

from .test_bitrix24_pull import ADMIN, b24_source, connector

DUE = datetime(2030, 1, 15, 9, 0, tzinfo=UTC)


def task(key: str, kind: str, remote_id: str, responsible: str | None = None) -> TaskRequest:
    return TaskRequest(key, CustomerRef(kind, remote_id), "Позвонить клиенту", "Клиент уходит", DUE, "call",
                       responsible, f"[segsync:{key}]")  # fmt: skip


async def test_labels_land_in_user_fields(engine, sandbox_factory):
    handle = sandbox_factory(seed=11, size="tiny")
    conn, _ = connector(engine, b24_source(handle))
    async with conn:
        await conn.prepare_writeback(["abc_xyz", "rfm", "churn_risk"])
        results = await conn.set_labels([
            LabelChange("a", CustomerRef("contact", "1"), {}, {"abc_xyz": "AX", "rfm": "555", "churn_risk": "yes"}),
            LabelChange("b", CustomerRef("company", "1"), {}, {"abc_xyz": "CZ"}),
            LabelChange("c", CustomerRef("contact", "999999"), {}, {"rfm": "111"}),
        ])  # fmt: skip
        assert [r.ok for r in results] == [True, True, False]
        cleared = await conn.set_labels([LabelChange("d", CustomerRef("contact", "1"),
                                                     {"abc_xyz": "AX", "rfm": "555", "churn_risk": "yes"},
                                                     {"abc_xyz": "BX"})])  # fmt: skip
        assert cleared[0].ok
    defined = handle.admin("GET", ADMIN + "userfields")
    names = {f["FIELD_NAME"] for f in defined["contact"]}
    assert {"UF_CRM_SG_ABC_XYZ", "UF_CRM_SG_RFM", "UF_CRM_SG_CHURN_RISK"} <= names
    assert {f["USER_TYPE_ID"] for f in defined["contact"] if f["FIELD_NAME"].startswith("UF_CRM_SG_")} == {"string"}
    contact = handle.admin("GET", ADMIN + "fields?entity=contact&ids=1")["fields"]["1"]
    assert contact["UF_CRM_SG_ABC_XYZ"] == "BX"
    assert contact.get("UF_CRM_SG_RFM") in ("", None) and contact.get("UF_CRM_SG_CHURN_RISK") in ("", None)
    assert "None" not in contact.values()  # cleared means empty, never the text "None"
    company = handle.admin("GET", ADMIN + "fields?entity=company&ids=1")["fields"]["1"]
    assert company["UF_CRM_SG_ABC_XYZ"] == "CZ"


async def test_tasks_are_created_found_and_completed(engine, sandbox_factory):
    handle = sandbox_factory(seed=12, size="tiny")
    conn, _ = connector(engine, b24_source(handle))
    async with conn:
        created = await conn.create_tasks([task("t1", "contact", "2"), task("t2", "company", "1", "1")])
        assert all(r.ok and r.remote_id for r in created)
        found = await conn.find_tasks([CustomerRef("contact", "2"), CustomerRef("company", "1")], "[segsync:t1]")
        assert [(f.remote_id, f.completed) for f in found] == [(created[0].remote_id, False)]
        assert found[0].due is not None and abs(found[0].due - DUE) < timedelta(seconds=1)
        done = await conn.complete_tasks([("t1", created[0].remote_id)])
        assert done[0].ok
        found = await conn.find_tasks([CustomerRef("contact", "2")], "[segsync:t1]")
        assert found[0].completed
    tasks = {str(t["id"] if "id" in t else t["ID"]): t for t in handle.admin("GET", ADMIN + "tasks")["tasks"]}
    stored = tasks[created[0].remote_id]
    text = str(stored)
    assert "C_2" in text and "[segsync:t1]" in text
    assert "CO_1" in str(tasks[created[1].remote_id])


async def test_todo_mode(engine, sandbox_factory):
    handle = sandbox_factory(seed=13, size="tiny")
    conn, _ = connector(engine, b24_source(handle, tasks="todo"))
    async with conn:
        created = await conn.create_tasks([task("t1", "contact", "3", "1")])
        assert created[0].ok and created[0].remote_id
        found = await conn.find_tasks([CustomerRef("contact", "3")], "[segsync:t1]")
        assert [f.remote_id for f in found] == [created[0].remote_id]
    todos = handle.admin("GET", ADMIN + "todos")["todos"]
    assert any(str(t["ID"]) == created[0].remote_id and str(t["OWNER_ID"]) == "3" for t in todos)
