"""Conformance: PATCH with tags, tasks, notes, the events log and outgoing webhooks (§4–§6 of amocrm.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import parse_qsl

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from segsync.sandbox.amocrm import AmoOptions
from segsync.sandbox.amocrm.testing import RunningAccount, running_account, small_world

RECEIVED: list[list[tuple[str, str]]] = []


async def hook(request: Request) -> Response:
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    RECEIVED.append(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    return Response("ok")


@pytest.fixture
def amo() -> Iterator[RunningAccount]:
    RECEIVED.clear()
    world = small_world(seed=5, companies=4, contacts=12, deals=15, activities=4)
    with running_account(
        world, options=AmoOptions(rate_limit_rps=1e9), extra_routes=[Route("/hook", hook, methods=["POST"])]
    ) as running:
        yield running


def first_id(c, kind: str) -> int:
    return c.get(f"/api/v4/{kind}", params={"limit": 1}).json()["_embedded"][kind][0]["id"]


def tag_names(c, kind: str, entity_id: int) -> list[str]:
    return [t["name"] for t in c.get(f"/api/v4/{kind}/{entity_id}").json()["_embedded"]["tags"]]


def test_tags_to_add_and_tags_to_delete(amo: RunningAccount) -> None:
    with amo.client() as c:
        cid = first_id(c, "contacts")
        r = c.patch("/api/v4/contacts", json=[{"id": cid, "tags_to_add": [{"name": "vip"}, {"name": "segment:A"}]}])
        assert r.status_code == 200
        out = r.json()["_embedded"]["contacts"][0]
        assert out["id"] == cid and isinstance(out["updated_at"], int)
        assert tag_names(c, "contacts", cid) == ["vip", "segment:A"]
        vip = next(t["id"] for t in c.get(f"/api/v4/contacts/{cid}").json()["_embedded"]["tags"] if t["name"] == "vip")
        c.patch("/api/v4/contacts", json=[{"id": cid, "tags_to_delete": [{"id": vip}]}])
        assert tag_names(c, "contacts", cid) == ["segment:A"]
        c.patch(
            f"/api/v4/contacts/{cid}", json={"tags_to_delete": [{"name": "segment:A"}], "tags_to_add": [{"name": "B"}]}
        )
        assert tag_names(c, "contacts", cid) == ["B"]
        dictionary = c.get("/api/v4/contacts/tags").json()["_embedded"]["tags"]
    assert {"vip", "segment:A", "B"} <= {t["name"] for t in dictionary}


def test_embedded_tags_replace_the_list_and_win_over_deltas(amo: RunningAccount) -> None:
    with amo.client() as c:
        lid = first_id(c, "leads")
        c.patch("/api/v4/leads", json=[{"id": lid, "tags_to_add": [{"name": "old1"}, {"name": "old2"}]}])
        body = [{"id": lid, "_embedded": {"tags": [{"name": "only"}]}, "tags_to_add": [{"name": "ignored"}]}]
        assert c.patch("/api/v4/leads", json=body).status_code == 200
        tags = c.get(f"/api/v4/leads/{lid}").json()["_embedded"]["tags"]
        assert [t["name"] for t in tags] == ["only"]
        assert set(tags[0]) == {"id", "name", "color"}  # colour exists for lead tags
        c.patch("/api/v4/leads", json=[{"id": lid, "_embedded": {"tags": None}}])
        assert tag_names(c, "leads", lid) == []


def test_tags_are_per_entity_type(amo: RunningAccount) -> None:
    with amo.client() as c:
        c.patch("/api/v4/leads", json=[{"id": first_id(c, "leads"), "tags_to_add": [{"name": "same"}]}])
        c.patch("/api/v4/contacts", json=[{"id": first_id(c, "contacts"), "tags_to_add": [{"name": "same"}]}])
        lead_tag = c.get("/api/v4/leads/tags", params={"filter[name]": "same"}).json()["_embedded"]["tags"][0]
        contact_tag = c.get("/api/v4/contacts/tags", params={"filter[name]": "same"}).json()["_embedded"]["tags"][0]
    assert lead_tag["id"] != contact_tag["id"]


def test_patch_bumps_updated_at_and_shows_in_filtered_window(amo: RunningAccount) -> None:
    with amo.client() as c:
        cid = first_id(c, "contacts")
        before = c.get(f"/api/v4/contacts/{cid}").json()["updated_at"]
        c.patch("/api/v4/contacts", json=[{"id": cid, "name": "Новое имя"}])
        after = c.get(f"/api/v4/contacts/{cid}").json()
        window = c.get(
            "/api/v4/contacts",
            params={"filter[updated_at][from]": after["updated_at"], "filter[updated_at][to]": after["updated_at"]},
        ).json()["_embedded"]["contacts"]
    assert after["name"] == "Новое имя" and after["updated_at"] > before
    assert [x["id"] for x in window] == [cid]


def test_validation_error_body_names_request_id_and_path(amo: RunningAccount) -> None:
    with amo.client() as c:
        lid = first_id(c, "leads")
        r = c.patch(
            "/api/v4/leads",
            json=[
                {"id": lid, "name": "fine"},
                {
                    "id": lid,
                    "request_id": "mine",
                    "custom_fields_values": [{"field_id": 1, "values": [{"value": "x"}]}],
                },
            ],
        )
        unchanged = c.get(f"/api/v4/leads/{lid}").json()["name"]
        empty = c.patch("/api/v4/leads", content=b"")
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["title"] == "Bad Request" and body["status"] == 400 and body["detail"] == "Request validation failed"
    err = body["validation-errors"][0]
    assert err["request_id"] == "mine"
    assert err["errors"][0] == {
        "code": "NotSupportedChoice",
        "path": "custom_fields_values.0.field_id",
        "detail": "The value you selected is not a valid choice.",
    }
    assert unchanged != "fine"  # the whole batch is refused
    assert empty.status_code == 400 and empty.json()["detail"] == "Request data can not be empty"


def test_write_batch_limit(amo: RunningAccount) -> None:
    with amo.client() as c:
        lid = first_id(c, "leads")
        r = c.patch("/api/v4/leads", json=[{"id": lid}] * 51)
    assert r.status_code == 422 and r.json()["detail"] == "Limit 50 per page"


def test_custom_field_write_by_code_replaces_values(amo: RunningAccount) -> None:
    with amo.client() as c:
        cid = first_id(c, "contacts")
        body = [
            {
                "id": cid,
                "custom_fields_values": [
                    {"field_code": "PHONE", "values": [{"value": "+79990001122", "enum_code": "MOB"}]}
                ],
            }
        ]
        assert c.patch("/api/v4/contacts", json=body).status_code == 200
        cf = c.get(f"/api/v4/contacts/{cid}").json()["custom_fields_values"]
    phone = next(f for f in cf if f["field_code"] == "PHONE")
    assert phone["values"] == [{"value": "+79990001122", "enum_id": phone["values"][0]["enum_id"], "enum_code": "MOB"}]


def test_tasks_post_filter_and_complete(amo: RunningAccount) -> None:
    with amo.client() as c:
        cid = first_id(c, "contacts")
        due = int(time.time()) + 86_400
        r = c.post(
            "/api/v4/tasks",
            json=[
                {"text": "Reactivation call [reactivation:2026-Q4]", "complete_till": due, "entity_id": cid,
                 "entity_type": "contacts", "task_type_id": 1, "responsible_user_id": 9000002, "request_id": "react-1"}
            ],
        )  # fmt: skip
        assert r.status_code == 200
        created = r.json()["_embedded"]["tasks"][0]
        assert created["request_id"] == "react-1" and isinstance(created["id"], int)
        params = {"filter[entity_type]": "contacts", "filter[entity_id][]": cid, "filter[is_completed]": 0}
        open_tasks = c.get("/api/v4/tasks", params=params).json()["_embedded"]["tasks"]
        assert created["id"] in [t["id"] for t in open_tasks]
        assert c.get(f"/api/v4/contacts/{cid}").json()["closest_task_at"] <= due
        done = c.patch(f"/api/v4/tasks/{created['id']}", json={"is_completed": True, "result": {"text": "Дозвонились"}})
        assert done.status_code == 200 and done.json()["id"] == created["id"]
        task = c.get(f"/api/v4/tasks/{created['id']}").json()
        assert task["is_completed"] is True and task["result"] == {"text": "Дозвонились"}
        assert task["entity_type"] == "contacts" and task["complete_till"] == due
        left = c.get("/api/v4/tasks", params=params)
        assert created["id"] not in [
            t["id"] for t in (left.json()["_embedded"]["tasks"] if left.status_code == 200 else [])
        ]
        bad = c.post("/api/v4/tasks", json=[{"text": "", "request_id": "x"}])
        assert bad.status_code == 400
        paths = {e["path"] for e in bad.json()["validation-errors"][0]["errors"]}
        assert paths == {"text", "complete_till"}
        too_many = c.post("/api/v4/tasks", json=[{"text": "t", "complete_till": due}] * 51)
        assert too_many.status_code == 422
        needs_type = c.get("/api/v4/tasks", params={"filter[entity_id]": cid})
        assert needs_type.status_code == 400


def test_notes_add_and_list(amo: RunningAccount) -> None:
    with amo.client() as c:
        lid = first_id(c, "leads")
        r = c.post("/api/v4/leads/notes", json=[{"entity_id": lid, "note_type": "common", "params": {"text": "audit"}}])
        assert r.status_code == 200
        note = r.json()["_embedded"]["notes"][0]
        assert note["entity_id"] == lid and note["request_id"] == "0"
        page = c.get(f"/api/v4/leads/{lid}/notes").json()
    listed = page["_embedded"]["notes"]
    assert listed[0]["params"] == {"text": "audit"} and listed[0]["note_type"] == "common"
    assert page["_links"]["self"]["href"].startswith(f"{amo.base_url}/api/v4/leads/{lid}/notes?")


def events(c, **params) -> list[dict]:
    r = c.get("/api/v4/events", params=params)
    return [] if r.status_code == 204 else r.json()["_embedded"]["events"]


def test_events_for_deleted_restored_merged_and_tags(amo: RunningAccount) -> None:
    admin = amo.admin()
    with amo.client() as c:
        since = int(time.time()) - 5
        lid = first_id(c, "leads")
        contacts = c.get("/api/v4/contacts", params={"limit": 2}).json()["_embedded"]["contacts"]
        assert admin.delete(f"/entities/leads/{lid}").status_code == 200
        assert c.get(f"/api/v4/leads/{lid}").status_code == 204
        assert lid not in [x["id"] for x in c.get("/api/v4/leads", params={"limit": 250}).json()["_embedded"]["leads"]]
        trash = c.get("/api/v4/leads", params={"with": "only_deleted"}).json()["_embedded"]["leads"]
        assert [(x["id"], x["is_deleted"]) for x in trash] == [(lid, True)]
        admin.post("/restore", json={"entity_type": "leads", "id": lid})
        keep, gone = contacts[0]["id"], contacts[1]["id"]
        admin.post("/merge", json={"keep_id": keep, "remove_id": gone})
        c.patch("/api/v4/contacts", json=[{"id": keep, "tags_to_add": [{"name": "merged"}]}])
        types = ["lead_deleted", "lead_restored", "contact_deleted", "entity_merged"]
        feed = events(c, **{"filter[type]": ",".join(types), "filter[created_at][from]": since, "limit": 100})
        tag_feed = events(c, **{"filter[type][]": "entity_tag_added", "filter[entity]": "contact"})
        one = events(c, **{"filter[entity]": "lead", "filter[entity_id][]": lid})
        bad = c.get("/api/v4/events", params={"filter[entity_id]": lid})
        over = c.get("/api/v4/events", params={"limit": 101})
    by_type = {e["type"]: e for e in feed}
    assert set(by_type) == {"lead_deleted", "lead_restored", "entity_merged"}
    for e in feed:
        assert e["value_after"] == [] and e["value_before"] == []
        assert isinstance(e["id"], str) and len(e["id"]) == 26
    assert by_type["lead_deleted"]["entity_id"] == lid and by_type["lead_deleted"]["entity_type"] == "lead"
    assert by_type["entity_merged"]["entity_id"] == gone
    assert by_type["lead_deleted"]["_embedded"]["entity"]["_links"]["self"]["href"].endswith(f"/api/v4/leads/{lid}")
    assert feed == sorted(feed, key=lambda e: e["created_at"], reverse=True)
    assert tag_feed[0]["value_after"] == [{"tag": {"name": "merged"}}]
    assert {e["type"] for e in one} == {"lead_deleted", "lead_restored"}
    assert bad.status_code == 400  # entity_id needs exactly one filter[entity]
    assert over.status_code == 422 and over.json()["detail"] == "Limit 100 per page"


def test_admin_edit_logs_events_and_posts_webhooks(amo: RunningAccount) -> None:
    admin = amo.admin()
    assert admin.post("/webhook", json={"url": f"{amo.root_url}/hook"}).status_code == 200
    with amo.client() as c:
        won = {"filter[statuses][0][pipeline_id]": 7000000, "filter[statuses][0][status_id]": 142}
        lead = c.get("/api/v4/leads", params=won).json()["_embedded"]["leads"][0]
        r = admin.post(
            "/edit", json={"entity_type": "leads", "id": lead["id"], "fields": {"status_id": 143, "price": 777}}
        )
        assert r.status_code == 200
        cid = first_id(c, "contacts")
        admin.delete(f"/entities/contacts/{cid}")
        status_events = events(c, **{"filter[type]": "lead_status_changed"})
        after = c.get(f"/api/v4/leads/{lead['id']}").json()
    deadline = time.monotonic() + 5
    while len(RECEIVED) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert after["status_id"] == 143 and after["price"] == 777 and after["updated_at"] >= r.json()["updated_at"]
    assert status_events[0]["value_after"] == [{"lead_status": {"id": 143, "pipeline_id": 7000000}}]
    assert status_events[0]["value_before"] == [{"lead_status": {"id": 142, "pipeline_id": 7000000}}]
    forms = [dict(f) for f in RECEIVED]
    status = next(f for f in forms if "leads[status][0][id]" in f)
    assert status["leads[status][0][id]"] == str(lead["id"])
    assert status["leads[status][0][status_id]"] == "143"
    assert status["leads[status][0][old_status_id]"] == "142"
    assert (
        status["account[id]"] == str(amo.info["account_id"]) and status["account[subdomain]"] == amo.info["subdomain"]
    )
    update = next(f for f in forms if "leads[update][0][id]" in f)
    assert update["leads[update][0][price]"] == "777" and "leads[update][0][last_modified]" in update
    deleted = next(f for f in forms if "contacts[delete][0][id]" in f)
    assert deleted["contacts[delete][0][id]"] == str(cid) and deleted["contacts[delete][0][type]"] == "contact"
    # The sender counts a delivery only after the receiver has answered, so poll for the counter too.
    while admin.get("/state").json()["webhooks"]["sent"] < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert admin.get("/state").json()["webhooks"]["sent"] >= 3


def test_admin_views_written_tasks_and_tags(amo: RunningAccount) -> None:
    admin = amo.admin()
    with amo.client() as c:
        cid = first_id(c, "contacts")
        c.patch("/api/v4/contacts", json=[{"id": cid, "tags_to_add": [{"name": "seg"}]}])
        c.post(
            "/api/v4/tasks",
            json=[{"text": "t", "complete_till": 2_000_000_000, "entity_type": "contacts", "entity_id": cid}],
        )
    assert admin.get("/tags").json()["tags"]["contacts"][str(cid)] == ["seg"]
    assert any(t["entity_id"] == cid and t["text"] == "t" for t in admin.get("/tasks").json()["tasks"])
    assert amo.account.options.admin_token and admin.get("/state", headers={"X-Sandbox-Admin": "no"}).status_code == 403
