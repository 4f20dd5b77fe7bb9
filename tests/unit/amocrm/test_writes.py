"""Tags by delta fields only, tasks POSTed in arrays with per-element result mapping, never resent blindly."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import httpx

from segsync.contract import CustomerRef, LabelChange, TaskRequest

from .conftest import connector, seed_tokens
from .fake import html, problem

DUE = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def _writes(fake, method, path):
    return [json.loads(r.content) for r in fake.requests if r.method == method and r.url.path == path]


def _task(i: int, text: str = "Call back") -> TaskRequest:
    return TaskRequest(key=f"k{i}", customer=CustomerRef("contact", str(i)), title=text, description="",
                       due=DUE, type="call", responsible_id="504141", marker=f"[seg:r{i}]")  # fmt: skip


async def test_tags_use_delta_fields_with_prefix_and_batches_of_50(fake, store):
    await seed_tokens(store, fake)
    for i in range(1, 121):
        fake.add(
            "contacts",
            i,
            1_700_000_000,
            _embedded={"tags": [{"id": 5, "name": "manager-own"}, {"id": 6, "name": "seg:C"}]},
        )
    changes = [LabelChange(f"k{i}", CustomerRef("contact", str(i)), {"abc": "C"}, {"abc": "A", "rfm": "555"})
               for i in range(1, 121)]  # fmt: skip
    async with connector(store) as amo:
        results = await amo.set_labels(changes)
    assert all(r.ok for r in results) and [r.key for r in results] == [c.key for c in changes]
    bodies = _writes(fake, "PATCH", "/api/v4/contacts")
    assert [len(b) for b in bodies] == [50, 50, 20]
    item = bodies[0][0]
    assert item["tags_to_add"] == [{"name": "seg:555"}, {"name": "seg:A"}]
    assert item["tags_to_delete"] == [{"name": "seg:C"}]
    assert "_embedded" not in item and "tags" not in item
    assert [t["name"] for t in fake.records["contacts"][1]["_embedded"]["tags"]] == ["manager-own", "seg:555", "seg:A"]


async def test_one_bad_element_fails_alone_and_the_rest_is_applied(fake, store):
    await seed_tokens(store, fake)
    fake.add("companies", 1, 1_700_000_000)
    changes = [LabelChange("ok", CustomerRef("company", "1"), {}, {"abc": "A"}),
               LabelChange("gone", CustomerRef("company", "999"), {}, {"abc": "A"})]  # fmt: skip
    async with connector(store) as amo:
        ok, gone = await amo.set_labels(changes)
    assert ok.ok and not gone.ok and "Entity not found" in gone.error and not gone.retriable


async def test_timed_out_tag_batch_is_split_and_resent(fake, store):
    await seed_tokens(store, fake)
    for i in range(1, 5):
        fake.add("contacts", i, 1_700_000_000)
    changes = [LabelChange(f"k{i}", CustomerRef("contact", str(i)), {}, {"abc": "B"}) for i in range(1, 5)]
    async with connector(store) as amo:
        await amo.set_labels(changes[:1])  # the tag seg:B exists from here on: the next call only PATCHes
        fake.canned = [problem(504, "Gateway Timeout")]
        results = await amo.set_labels(changes)
    assert all(r.ok for r in results)
    assert [len(b) for b in _writes(fake, "PATCH", "/api/v4/contacts")] == [1, 4, 2, 2]


async def test_tasks_are_posted_as_arrays_and_mapped_back_by_request_id(fake, store):
    await seed_tokens(store, fake)
    tasks = [_task(i) for i in range(1, 61)]
    async with connector(store) as amo:
        results = await amo.create_tasks(tasks)
    assert all(r.ok and r.remote_id for r in results)
    bodies = _writes(fake, "POST", "/api/v4/tasks")
    assert [len(b) for b in bodies] == [50, 10]
    first = bodies[0][0]
    assert first == {"text": "Call back\n[seg:r1]", "complete_till": int(DUE.timestamp()), "entity_id": 1,
                     "entity_type": "contacts", "task_type_id": 1, "request_id": "0",
                     "responsible_user_id": 504141}  # fmt: skip
    assert fake.tasks[int(results[0].remote_id)]["entity_id"] == 1


async def test_task_validation_errors_map_per_element_and_the_rest_is_ambiguous(fake, store):
    await seed_tokens(store, fake)
    tasks = [_task(1), replace(_task(2, text=""), marker="")]  # empty text: a validation error
    async with connector(store) as amo:
        good, bad = await amo.create_tasks(tasks)
    assert not bad.ok and "text" in bad.error and not bad.ambiguous
    assert not good.ok and good.ambiguous  # partial success of a refused batch is undocumented: look first


async def test_a_timed_out_task_post_is_ambiguous_never_resent_and_shrinks_batches(fake, store):
    await seed_tokens(store, fake)
    async with connector(store) as amo:
        fake.canned = [html(504)]
        results = await amo.create_tasks([_task(i) for i in range(1, 5)])
        assert all(r.ambiguous and not r.ok for r in results)
        assert len(_writes(fake, "POST", "/api/v4/tasks")) == 1
        assert amo.writer.task_batch == 2
        fake.canned = [httpx.Response(429, headers={"content-type": "text/html"}, content=b"<html>429</html>")]
        results = await amo.create_tasks([_task(9)])  # a 429 processed nothing: retried safely
    assert results[0].ok


async def test_find_tasks_by_entity_and_marker_then_complete(fake, store):
    await seed_tokens(store, fake)
    async with connector(store) as amo:
        created = await amo.create_tasks([_task(1), _task(2)])
        fake.tasks[999] = {"id": 999, "entity_type": "contacts", "entity_id": 1, "text": "manager's own",
                           "is_completed": False, "complete_till": 1, "updated_at": 1}  # fmt: skip
        found = await amo.find_tasks([CustomerRef("contact", "1"), CustomerRef("contact", "2")], "[seg:r1]")
        assert [t.remote_id for t in found] == [created[0].remote_id] and not found[0].completed
        q = [r for r in fake.requests if r.method == "GET" and r.url.path == "/api/v4/tasks"][0].url.params  # noqa: RUF015
        assert q["filter[entity_type]"] == "contacts" and q.get_list("filter[entity_id][]") == ["1", "2"]
        done = await amo.complete_tasks([("c1", created[0].remote_id)])
    assert done[0].ok and fake.tasks[int(created[0].remote_id)]["is_completed"] is True
    body = _writes(fake, "PATCH", "/api/v4/tasks")[0]
    assert body[0]["is_completed"] is True and body[0]["result"]["text"]


async def test_tags_are_created_for_the_values_written_never_for_label_keys(fake, store):
    """prepare_writeback gets label *keys* (the contract); amoCRM tags are named after label values."""
    await seed_tokens(store, fake)
    fake.add("contacts", 1, 1_700_000_000)
    fake.add("contacts", 2, 1_700_000_000)
    changes = [LabelChange("k1", CustomerRef("contact", "1"), {}, {"abc": "A", "rfm": "555"}),
               LabelChange("k2", CustomerRef("contact", "2"), {}, {"abc": "A"})]  # fmt: skip
    async with connector(store) as amo:
        await amo.prepare_writeback(["abc", "rfm"])
        assert _writes(fake, "POST", "/api/v4/contacts/tags") == []
        await amo.set_labels(changes)
        await amo.set_labels([LabelChange("k3", CustomerRef("contact", "2"), {"abc": "A"}, {"abc": "A", "rfm": "555"})])
    created = _writes(fake, "POST", "/api/v4/contacts/tags")
    assert [[t["name"] for t in body] for body in created] == [["seg:555", "seg:A"]]  # once, before the PATCH
    listed = [r for r in fake.requests if r.method == "GET" and r.url.path == "/api/v4/contacts/tags"]
    assert len(listed) == 1 and listed[0].url.params["query"] == "seg:"
