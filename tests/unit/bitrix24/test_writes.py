"""Write operations against the fake portal: user fields, labels, tasks and to-dos."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl

import httpx
import pytest

from connectors.bitrix24.writes import field_code, field_name
from segsync.contract import CustomerRef, LabelChange, TaskRequest
from segsync.errors import FatalCrmError

from .fakeportal import company, contact

DUE = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)


def _cmds(portal, method):
    return [dict(parse_qsl(c.partition("?")[2], keep_blank_values=True))
            for m, b in portal.requests if m == "batch"
            for c in b["cmd"].values() if c.startswith(method + "?")]  # fmt: skip


def test_field_names_fit_the_20_character_limit():
    assert field_name("rfm") == "UF_CRM_SG_RFM"
    assert field_name("abc_xyz") == "UF_CRM_SG_ABC_XYZ"
    assert field_name("churn_risk") == "UF_CRM_SG_CHURN_RISK"
    long = field_name("churn-risk-segment")
    assert len(long) <= 20 and long.startswith("UF_CRM_SG_")
    assert long != field_name("churn-risk-segmentation") and field_code("rfm") == "SG_RFM"


async def test_user_fields_are_created_once_as_strings(portal, connect):
    async with connect() as conn:
        await conn.prepare_writeback(["abc", "rfm"])
        await conn.prepare_writeback(["abc", "rfm"])
    assert [f["FIELD_NAME"] for f in portal.userfields["contact"]] == ["UF_CRM_SG_ABC", "UF_CRM_SG_RFM"]
    assert [f["FIELD_NAME"] for f in portal.userfields["company"]] == ["UF_CRM_SG_ABC", "UF_CRM_SG_RFM"]
    adds = _cmds(portal, "crm.contact.userfield.add")
    assert len(adds) == 2 and adds[0]["fields[USER_TYPE_ID]"] == "string" and adds[0]["fields[FIELD_NAME]"] == "SG_ABC"
    assert len([m for m, _ in portal.requests if m == "batch"]) == 2  # list + add; then known to exist


async def test_existing_fields_are_reused(portal, connect):
    portal.userfields["contact"].append({"ID": "7", "FIELD_NAME": "UF_CRM_SG_ABC", "USER_TYPE_ID": "string"})
    portal.userfields["company"].append({"ID": "8", "FIELD_NAME": "UF_CRM_SG_ABC", "USER_TYPE_ID": "string"})
    async with connect() as conn:
        await conn.prepare_writeback(["abc"])
    assert not _cmds(portal, "crm.contact.userfield.add")


async def test_field_creation_without_admin_rights_is_fatal(portal, connect):
    def denied(method, body):
        if method == "batch" and any("userfield.add" in c for c in body["cmd"].values()):
            return httpx.Response(200, json={"result": {"result": [], "result_error": {
                "a0": {"error": "", "error_description": "Access denied."}}, "result_total": [], "result_next": [],
                "result_time": []}, "time": {}})  # fmt: skip
        return None

    portal.hooks.append(denied)
    async with connect() as conn:
        with pytest.raises(FatalCrmError, match="administrator"):
            await conn.prepare_writeback(["abc"])


async def test_labels_set_and_cleared_per_command(portal, connect):
    portal.contacts = [contact(1), contact(2)]
    portal.companies = [company(3)]
    changes = [
        LabelChange("k1", CustomerRef("contact", "1"), {}, {"abc": "A", "rfm": "555"}),
        LabelChange("k2", CustomerRef("company", "3"), {"abc": "B", "rfm": "111"}, {"abc": "A"}),
        LabelChange("k3", CustomerRef("contact", "404"), {}, {"abc": "C"}),
        LabelChange("k4", CustomerRef("contact", "2"), {}, {}),
    ]
    async with connect() as conn:
        results = await conn.set_labels(changes)
    assert [(r.key, r.ok) for r in results] == [("k1", True), ("k2", True), ("k3", False), ("k4", True)]
    assert results[0].remote_id == "1"
    assert not results[2].retriable and "not found" in results[2].error
    assert portal.contacts[0]["UF_CRM_SG_ABC"] == "A"
    assert portal.companies[0]["UF_CRM_SG_ABC"] == "A"
    assert portal.companies[0]["UF_CRM_SG_RFM"] == ""  # cleared, not the text "None"
    updates = _cmds(portal, "crm.company.update")
    assert updates[0]["fields[UF_CRM_SG_RFM]"] == "" and updates[0]["params[REGISTER_SONET_EVENT]"] == "N"
    assert all("None" not in v for u in updates + _cmds(portal, "crm.contact.update") for v in u.values())


async def test_a_label_batch_with_unknown_outcome_is_ambiguous(portal, connect):
    portal.contacts = [contact(1)]
    async with connect() as conn:
        await conn.prepare_writeback(["abc"])
        portal.faults.append(
            lambda m, b: httpx.Response(502, text="<html>Bad Gateway</html>", headers={"content-type": "text/html"})
        )
        results = await conn.set_labels([LabelChange("k1", CustomerRef("contact", "1"), {}, {"abc": "A"})])
    assert results[0].ambiguous and not results[0].ok
    assert len(_cmds(portal, "crm.contact.update")) == 1  # sent once, never repeated blindly


def _task(key: str, kind: str, rid: str, responsible: str | None = "5") -> TaskRequest:
    return TaskRequest(key, CustomerRef(kind, rid), "Call back", "Customer is at risk", DUE, "call", responsible,
                       f"[segsync:{key}]")  # fmt: skip


async def test_tasks_bound_to_crm_records(portal, connect):
    async with connect() as conn:
        results = await conn.create_tasks([_task("t1", "contact", "7"), _task("t2", "company", "3", None)])
        assert all(r.ok for r in results) and results[0].remote_id == "3701"
        adds = _cmds(portal, "tasks.task.add")
        assert adds[0]["fields[UF_CRM_TASK][0]"] == "C_7" and adds[1]["fields[UF_CRM_TASK][0]"] == "CO_3"
        assert datetime.fromisoformat(adds[0]["fields[DEADLINE]"]) == DUE  # an explicit offset: no tz guessing
        assert adds[1]["fields[RESPONSIBLE_ID]"] == "1"  # the webhook's user when none is given
        assert "[segsync:t1]" in adds[0]["fields[DESCRIPTION]"]
        found = await conn.find_tasks([CustomerRef("contact", "7"), CustomerRef("company", "3")], "[segsync:t1]")
        assert [(t.remote_id, t.completed, t.customer.remote_id) for t in found] == [("3701", False, "7")]
        done = await conn.complete_tasks([("t1", "3701"), ("t9", "9999")])
        assert [(r.ok, r.remote_id) for r in done] == [(True, "3701"), (False, "9999")]
        found = await conn.find_tasks([CustomerRef("contact", "7")], "[segsync:t1]")
        assert found[0].completed and found[0].due == datetime(2026, 3, 5, 9, 0, tzinfo=UTC)


async def test_todo_mode(portal, connect):
    async with connect(tasks="todo") as conn:
        results = await conn.create_tasks([_task("t1", "company", "3")])
        assert results[0].ok and results[0].remote_id == "901"
        add = _cmds(portal, "crm.activity.todo.add")[0]
        assert (add["ownerTypeId"], add["ownerId"], add["responsibleId"]) == ("4", "3", "5")
        found = await conn.find_tasks([CustomerRef("company", "3")], "[segsync:t1]")
        assert [(t.remote_id, t.completed) for t in found] == [("901", False)]
        assert (await conn.complete_tasks([("t1", "901")]))[0].ok
        assert (await conn.find_tasks([CustomerRef("company", "3")], "[segsync:t1]"))[0].completed


async def test_task_errors_are_per_command(portal, connect):
    async with connect() as conn:
        conn.transport.auth._user = None  # no fallback responsible
        results = await conn.create_tasks([_task("t1", "contact", "7"), _task("t2", "contact", "8", None)])
    assert results[0].ok and not results[1].ok and "responsible" in results[1].error
