"""A scripted CRM connector for daemon tests, registered under kind ``fake``.

It serves contacts from a JSON file (or generated ones) with an id cursor, so that a test can add a
record, send a webhook and watch the daemon pull it. Knobs make pages slow (to signal a daemon
mid-pull) or make every call fail, transiently or fatally. ``register()`` adds it to the connector
registry of this process; ``python tests/daemon/fakecrm.py ARGS`` runs the segsync CLI with it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from segsync.config.sources import SourceBase
from segsync.contract import ChangeHint, Customer, Page
from segsync.errors import FatalCrmError, RetriableCrmError, WebhookRejected
from segsync.registry import ConnectorSpec, connector_specs


class FakeSource(SourceBase):
    kind: Literal["fake"]
    data_file: str | None = None  # JSON list of {"id": int, "name": str}; else `contacts` generated ones
    contacts: int = 20
    page_size: int = 5
    page_delay: float = 0.0
    fail: Literal["none", "fatal", "transient"] = "none"
    webhook_token: str = "good-token"


class FakeConnector:
    def __init__(self, source: FakeSource, ctx: Any):
        self.source = source
        self.ctx = ctx

    async def __aenter__(self) -> FakeConnector:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def entities(self) -> list[str]:
        return ["contacts"]

    def _records(self) -> list[dict[str, Any]]:
        if self.source.data_file:
            path = Path(self.source.data_file)
            return json.loads(path.read_text()) if path.exists() else []
        return [{"id": i, "name": f"c{i}"} for i in range(1, self.source.contacts + 1)]

    def _check(self) -> None:
        self.ctx.on_request("fake.list", 200)
        if self.source.fail == "fatal":
            raise FatalCrmError("credentials revoked", source=self.source.name, status=401)
        if self.source.fail == "transient":
            raise RetriableCrmError("portal unavailable", source=self.source.name, status=503)

    async def pull(self, entity: str, cursor: dict[str, Any] | None, *, full: bool = False):
        after = 0 if (cursor is None or full) else int(cursor["id"])
        rows = sorted((r for r in self._records() if r["id"] > after), key=lambda r: r["id"])
        for start in range(0, len(rows), self.source.page_size):
            self._check()
            chunk = rows[start : start + self.source.page_size]
            if self.source.page_delay:
                await asyncio.sleep(self.source.page_delay)
            yield Page(
                "contacts",
                [Customer(kind="contact", remote_id=str(r["id"]), name=r["name"]) for r in chunk],
                cursor={"id": chunk[-1]["id"]},
            )
        if not rows:
            self._check()

    async def list_ids(self, entity: str):
        self._check()
        yield [str(r["id"]) for r in self._records()]

    async def deletions(self, cursor: dict[str, Any] | None):
        if False:
            yield

    def parse_webhook(self, path_secret: str | None, form: Mapping[str, Any]) -> list[ChangeHint]:
        if form.get("token") != self.source.webhook_token:
            raise WebhookRejected("wrong token", status=401)
        if "id" not in form:
            raise ValueError("no id")
        deleted = form.get("event") == "delete"
        return [ChangeHint(entity="contacts", remote_id=form["id"], deleted=deleted, kind="contact")]


SPEC = ConnectorSpec(kind="fake", source_model=FakeSource, factory=FakeConnector, title="fake")


def register() -> None:
    """Add the fake connector to this process's registry (before any rules are parsed)."""
    from segsync.config.models import rules_model

    connector_specs()["fake"] = SPEC
    rules_model.cache_clear()


def unregister() -> None:
    """Leave the registry as installed connectors made it (other tests compare the JSON Schema)."""
    from segsync.config.models import rules_model

    connector_specs().pop("fake", None)
    rules_model.cache_clear()


if __name__ == "__main__":
    register()
    from segsync.cli import app

    app(prog_name="segsync", args=sys.argv[1:])
