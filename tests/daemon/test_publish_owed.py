"""A daemon killed between a changing pull and the end of its push: the next lease holder finishes the chain.

Found by the crash-anywhere harness (tests/reliability/crash): the restarted daemon's first pull found nothing
new, so compute → push never ran again and the tasks left ``pending`` by the killed push stayed unwritten.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from harness import fake_source, running_daemon, wait_for, write_rules
from sqlalchemy import update

from segsync.app import ensure_sources
from segsync.config import parse_rules
from segsync.daemon.state import publish_owed
from segsync.daemon.steps import Step, StepContext
from segsync.runs import finish_run, recorded_run, start_run
from segsync.store import make_engine
from segsync.store import tables as t


def load_rules_text(sources: list[dict[str, Any]]) -> Any:
    return parse_rules(json.dumps({"timezone": "UTC", "sources": sources}), "rules.yaml", env={})


def test_publish_is_owed_until_a_push_completes_after_a_change(engine):
    (source,) = load_rules_text([fake_source("alpha")]).sources
    sid = ensure_sources(engine, [source])["alpha"]
    assert not publish_owed(engine, sid)  # nothing ever ran
    finish_run(engine, start_run(engine, "pull", sid), "ok")  # a pull without counts: nothing changed
    assert not publish_owed(engine, sid)
    changed = start_run(engine, "pull", sid)
    changed.counts = {"contacts": {"upserted": 3, "changed": 3}}
    finish_run(engine, changed, "ok")
    assert publish_owed(engine, sid)
    finish_run(engine, start_run(engine, "compute", sid), "ok")
    push = start_run(engine, "push", sid)  # killed here: the row stays `running`
    assert publish_owed(engine, sid)
    finish_run(engine, push, "ok")
    assert not publish_owed(engine, sid)
    finish_run(engine, start_run(engine, "pull", sid), "interrupted")  # its committed pages may be a change
    assert publish_owed(engine, sid)


async def test_a_new_lease_holder_resumes_an_unfinished_publish(tmp_path, store_url):
    calls: list[str] = []

    async def step(ctx: StepContext, name: str) -> Mapping[str, Any]:
        with recorded_run(ctx.engine, name, ctx.source_id):
            calls.append(ctx.source.name)
        return {}

    config = write_rules(tmp_path / "rules.yaml", [fake_source("alpha", contacts=3)])
    publish = [Step(name, functools.partial(step, name=name)) for name in ("compute", "push")]
    async with running_daemon(config, store_url, publish=publish):
        await wait_for(lambda: calls == ["alpha", "alpha"])
    async with running_daemon(config, store_url, publish=publish) as daemon:  # pulls, nothing new: no publish
        await wait_for(lambda: daemon.workers()["alpha"].last_success.get("pull"))
        await wait_for(lambda: not daemon.workers()["alpha"].busy)
        assert calls == ["alpha", "alpha"]
    engine = make_engine(store_url)
    with engine.begin() as conn:  # as if the last push had been killed mid-way
        last = conn.execute(t.runs.select().where(t.runs.c.step == "push").order_by(t.runs.c.id.desc())).first()
        conn.execute(update(t.runs).where(t.runs.c.id == last.id).values(status="interrupted"))
    async with running_daemon(config, store_url, publish=publish):
        await wait_for(lambda: calls == ["alpha"] * 4)
