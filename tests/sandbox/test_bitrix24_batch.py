"""`batch` as documented (shared/api/bitrix24.md §3): ≤ 50 commands, halt, $result references, the five
result sections, empty sections as [] and numeric keys turning maps into lists."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture(scope="module")
def hook(sandbox):
    return sandbox.info["bitrix24"]["webhook_url"]


def batch(hook, cmd, halt=0):
    r = httpx.post(hook + "batch", json={"halt": halt, "cmd": cmd}, timeout=30)
    assert r.status_code == 200  # a batch answers 200 even when commands fail
    return r.json()


def test_success_sections_and_time(hook):
    body = batch(hook, {"deals": "crm.deal.list?select[0]=ID&order[ID]=ASC", "one": "crm.deal.get?id=1"})
    res = body["result"]
    assert set(res) == {"result", "result_error", "result_total", "result_next", "result_time"}
    assert len(res["result"]["deals"]) == 50 and res["result"]["one"]["ID"] == "1"
    assert res["result_error"] == []
    assert res["result_total"] == {"deals": 500}
    assert res["result_next"] == {"deals": 50}
    assert {"start", "finish", "duration", "processing", "date_start", "date_finish"} <= set(
        res["result_time"]["deals"]
    )
    assert "time" in body


def test_mixed_success_and_errors_without_halt(hook):
    res = batch(hook, {"ok": "crm.deal.get?id=1", "bad": "crm.deal.get?id=0", "gone": "crm.deal.get?id=99999"})[
        "result"
    ]
    assert list(res["result"]) == ["ok"]
    assert res["result_error"] == {
        "bad": {"error": "", "error_description": "ID is not defined or invalid."},
        "gone": {"error": "", "error_description": "Not found"},
    }


def test_halt_stops_at_first_error(hook):
    res = batch(hook, {"bad": "crm.deal.get?id=0", "ok": "crm.deal.get?id=1"}, halt=1)["result"]
    assert res["result"] == [] and list(res["result_error"]) == ["bad"]


def test_numeric_keys_turn_maps_into_lists(hook):
    res = batch(hook, {"0": "crm.deal.get?id=0", "1": "crm.deal.get?id=99999"})["result"]
    assert isinstance(res["result_error"], list) and len(res["result_error"]) == 2
    assert res["result"] == [] and res["result_total"] == []


def test_result_references_chain_id_windows(hook):
    cmd = {"c0": "crm.deal.list?order[ID]=ASC&select[0]=ID&start=-1"}
    for i in range(1, 5):
        cmd[f"c{i}"] = f"crm.deal.list?order[ID]=ASC&select[0]=ID&start=-1&filter[>ID]=$result[c{i - 1}][49][ID]"
    res = batch(hook, cmd)["result"]
    ids = [int(r["ID"]) for i in range(5) for r in res["result"][f"c{i}"]]
    assert ids == list(range(1, 251))
    assert res["result_total"] == {f"c{i}": 0 for i in range(5)}


def test_reference_into_a_map(hook):
    res = batch(hook, {"d": "crm.deal.get?id=7", "c": "crm.deal.get?id=$result[d][ID]"})["result"]
    assert res["result"]["c"]["ID"] == "7"


def test_more_than_50_commands(hook):
    cmd = {f"k{i}": "crm.deal.get?id=1" for i in range(52)}
    res = batch(hook, cmd)["result"]
    assert len(res["result"]) == 50
    assert {v["error"] for v in res["result_error"].values()} == {"ERROR_BATCH_LENGTH_EXCEEDED"}


def test_nested_batch_is_not_allowed(hook):
    res = batch(hook, {"n": "batch?cmd[x]=crm.deal.get%3Fid%3D1"})["result"]
    assert res["result_error"]["n"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"


def test_form_encoded_batch_with_double_encoding(hook):
    r = httpx.post(hook + "batch", data={"halt": "0", "cmd[a]": "crm.deal.list?filter%5B%3CID%5D=3&select%5B0%5D=ID"})
    assert [x["ID"] for x in r.json()["result"]["result"]["a"]] == ["1", "2"]
