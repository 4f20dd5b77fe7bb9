"""Batch-chained ID windows: command chains, consumption rules, segments, parallel export."""

from __future__ import annotations

import pytest

from connectors.bitrix24.paging import (
    ListQuery,
    Segment,
    build_chain,
    commands_needed,
    consume,
    export,
    plan_segments,
)
from connectors.bitrix24.wire import CommandError
from segsync.errors import FatalCrmError

from .fakeportal import contact, deal

CONTACTS = ListQuery("crm.contact.list", ("ID", "NAME"))
DEALS = ListQuery("crm.item.list", ("id",), "id", "items", {"entityTypeId": 2})


def page(start: int, n: int = 50) -> list[dict]:
    return [{"ID": str(i)} for i in range(start, start + n)]


def test_chain_references_the_last_row_of_the_previous_command():
    chain = build_chain(CONTACTS, 100, None, 3)
    assert list(chain) == ["c0", "c1", "c2"]
    method, first = chain["c0"]
    assert method == "crm.contact.list"
    assert first == {"order": {"ID": "ASC"}, "filter": {">ID": 100}, "select": ["ID", "NAME"], "start": -1}
    assert chain["c2"][1]["filter"] == {">ID": "$result[c1][49][ID]"}
    items = build_chain(DEALS.with_filter({">=updatedTime": "2026-01-01T00:00:00+03:00"}), 0, 5000, 2)
    assert items["c1"][1]["filter"] == {
        ">=updatedTime": "2026-01-01T00:00:00+03:00",
        ">id": "$result[c0][items][49][id]",
        "<=id": 5000,
    }
    assert items["c0"][1]["entityTypeId"] == 2


def test_commands_needed_never_exceeds_the_id_range():
    assert commands_needed(0, None) == 50
    assert commands_needed(0, 2500) == 50
    assert commands_needed(2400, 2500) == 2
    assert commands_needed(2500, 2500) == 0


def test_consume_stops_at_the_first_short_page():
    results = {"c0": page(1), "c1": page(51, 20), "c2": [{"ID": "1"}]}  # c2: what follows is undocumented
    step = consume(CONTACTS, results, {}, 0, None, 3)
    assert len(step.rows) == 70 and step.last_id == 70 and step.done


def test_consume_keeps_rows_before_an_error():
    step = consume(CONTACTS, {"c0": page(1)}, {"c1": CommandError("OPERATION_TIME_LIMIT", "blocked")}, 0, None, 3)
    assert len(step.rows) == 50 and not step.done and step.error.code == "OPERATION_TIME_LIMIT"


def test_consume_stops_where_the_id_sequence_breaks():
    results = {"c0": page(1), "c1": page(1)}  # an unresolved reference that restarted from the top
    step = consume(CONTACTS, results, {}, 0, None, 2)
    assert step.last_id == 50 and not step.done


def test_consume_refuses_a_portal_that_ignores_the_id_filter():
    with pytest.raises(FatalCrmError, match="filter"):
        consume(CONTACTS, {"c0": page(1)}, {}, 100, None, 1)


def test_consume_ends_a_segment_at_its_upper_bound():
    step = consume(CONTACTS, {"c0": page(2451)}, {}, 2450, 2500, 1)
    assert step.done and step.last_id == 2500


def test_segments():
    segments = plan_segments(200_000, 4)
    assert [(s.lo, s.hi) for s in segments] == [(0, 50_000), (50_000, 100_000), (100_000, 150_000), (150_000, 200_000)]
    assert [(s.lo, s.hi) for s in plan_segments(6_000, 4)] == [(0, 2_500), (2_500, 5_000), (5_000, 6_000)]
    assert [(s.lo, s.hi) for s in plan_segments(6_000, 4, open_end=True)] == [(0, 2_500), (2_500, 5_000), (5_000, None)]
    assert [(s.lo, s.hi) for s in plan_segments(10, 4)] == [(0, 10)]
    assert [(s.lo, s.hi, s.done) for s in plan_segments(None, 4)] == [(0, 0, True)]  # empty: nothing to read
    assert [(s.lo, s.hi) for s in plan_segments(None, 4, open_end=True)] == [(0, None)]
    assert [(s.lo, s.hi) for s in plan_segments(200_000, 1)] == [(0, 200_000)]
    restored = Segment.from_list(Segment(0, 2500, 1200, False).as_list())
    assert (restored.lo, restored.hi, restored.after, restored.done) == (0, 2500, 1200, False)


async def test_export_reads_everything_once_in_few_requests(portal, connect):
    portal.contacts = [contact(i) for i in range(1, 6_001)]
    async with connect() as conn:
        segments = plan_segments(6_000, 4)
        seen = []
        async for index, step in export(conn.transport, CONTACTS, segments, concurrency=4):
            seen += [r["ID"] for r in step.rows]
            segments[index].after, segments[index].done = step.last_id, step.done
    assert sorted(seen, key=int) == [str(i) for i in range(1, 6_001)]
    assert len(seen) == len(set(seen))
    assert all(s.done for s in segments)
    assert [m for m, _ in portal.requests] == ["batch"] * 3  # 2,500 rows per request


async def test_export_with_sparse_ids_and_items_wrapper(portal, connect):
    portal.deals = [deal(i) for i in range(1, 20_000, 7)]
    async with connect() as conn:
        segments = plan_segments(20_000, 3)
        seen = []
        async for _, step in export(conn.transport, DEALS, segments, concurrency=3):
            seen += [r["id"] for r in step.rows]
    assert sorted(seen) == list(range(1, 20_000, 7))


async def test_export_resumes_a_segment_from_its_progress(portal, connect):
    portal.contacts = [contact(i) for i in range(1, 201)]
    async with connect() as conn:
        seen = []
        async for _, step in export(conn.transport, CONTACTS, [Segment(0, None, 120), Segment(0, 50, 50, True)]):
            seen += [int(r["ID"]) for r in step.rows]
    assert seen == list(range(121, 201))


async def test_export_survives_a_portal_that_restarts_on_unresolved_references(portal, connect):
    portal.contacts = [contact(i) for i in range(1, 131)]
    original = portal._resolve

    def resolve(params, results):  # an unresolvable reference turns into "no filter" (worst case)
        resolved = original(params, results)
        if isinstance(resolved, dict) and resolved.get("filter", {}).get(">ID") == "":
            resolved["filter"].pop(">ID")
        return resolved

    portal._resolve = resolve
    async with connect() as conn:
        seen = []
        async for _, step in export(conn.transport, CONTACTS, [Segment(0, None, 0)]):
            seen += [int(r["ID"]) for r in step.rows]
    assert seen == list(range(1, 131))


async def test_a_blocked_first_command_waits_for_the_reset_then_goes_on(portal, connect, events):
    import time

    import httpx

    from connectors.bitrix24.paging import fetch_step
    from connectors.bitrix24.wire import Timing

    portal.contacts = [contact(i) for i in range(1, 31)]
    portal.faults.append(
        lambda m, b: httpx.Response(
            200,
            json={
                "result": {
                    "result": [],
                    "result_error": {
                        "c0": {
                            "error": "OPERATION_TIME_LIMIT",
                            "error_description": "Method is blocked due to operation time limit.",
                        }
                    },
                    "result_total": [],
                    "result_next": [],
                    "result_time": [],
                },
                "time": {},
            },
        )
    )
    async with connect() as conn:
        now = time.time()
        conn.transport.budget.observe(
            "crm.contact.list", Timing(finish=now, operating=1.0, operating_reset_at=now + 0.4)
        )
        started = time.monotonic()
        step = await fetch_step(conn.transport, CONTACTS, 0, None)
        assert time.monotonic() - started >= 0.3
    assert len(step.rows) == 30 and step.done
    assert "operation_time_limit" in events.throttles


async def test_a_wrong_first_command_is_not_retried(portal, connect):
    import httpx

    from connectors.bitrix24.paging import fetch_step

    portal.faults.append(
        lambda m, b: httpx.Response(
            200,
            json={
                "result": {
                    "result": [],
                    "result_error": {"c0": {"error": "", "error_description": "Parameter 'filter' must be array."}},
                    "result_total": [],
                    "result_next": [],
                    "result_time": [],
                },
                "time": {},
            },
        )
    )
    async with connect() as conn:
        with pytest.raises(FatalCrmError, match="filter"):
            await fetch_step(conn.transport, CONTACTS, 0, None)
        assert conn.requests == 1
