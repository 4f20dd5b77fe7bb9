"""Outgoing account webhooks in the amo format (K-WH, A-WH): form-encoded PHP-bracket keys, strings only.

``leads[update][0][id]=…&account[subdomain]=…&account[id]=…``; companies arrive under ``contacts``
with ``type=company``; fields use the legacy names (``date_create``, ``last_modified``,
``modified_user_id``, ``custom_fields``). amo waits 2 s for a 2xx; the sandbox sends once and
counts the outcome (the retry schedule is only known second-hand).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from segsync.sandbox.amocrm.model import Kind, Record, cf_list

if TYPE_CHECKING:
    from segsync.sandbox.amocrm.account import AmoAccount

_KEY = {"leads": "leads", "contacts": "contacts", "companies": "contacts"}


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}[{k}]", v, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten(f"{prefix}[{i}]", v, out)
    elif value is None:
        out.append((prefix, ""))
    elif isinstance(value, bool):
        out.append((prefix, "1" if value else "0"))
    else:
        out.append((prefix, str(value)))


def entity_fields(acc: AmoAccount, kind: Kind, r: Record, action: str, extra: dict[str, Any]) -> dict[str, Any]:
    if action == "delete":
        if kind == "leads":
            return {"id": r.id, "status_id": r.status_id, "pipeline_id": r.pipeline_id}
        return {"id": r.id, "type": "contact" if kind == "contacts" else "company"}
    d: dict[str, Any] = {"id": r.id, "name": r.name}
    if kind == "leads":
        d |= {"status_id": r.status_id, "price": r.price, "pipeline_id": r.pipeline_id}
    d |= {
        "responsible_user_id": r.responsible_user_id,
        "date_create": r.created_at,
        "last_modified": r.updated_at,
        "created_user_id": r.created_by,
        "modified_user_id": r.updated_by,
        "account_id": acc.account_id,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
    }
    if kind != "leads":
        d["type"] = "contact" if kind == "contacts" else "company"
    if kind == "contacts" and r.company_id is not None:
        d["linked_company_id"] = r.company_id
    if r.tags:
        d["tags"] = [{"id": t, "name": acc.tags[kind].names[t]} for t in r.tags]
    fields = cf_list(r)
    if fields:
        d["custom_fields"] = [
            {
                "id": f["field_id"],
                "name": f["field_name"],
                **({"code": f["field_code"]} if f.get("field_code") else {}),
                "values": [
                    {"value": v.get("value"), **({"enum": v["enum_id"]} if v.get("enum_id") is not None else {})}
                    for v in f["values"]
                ],
            }
            for f in fields
        ]
    d |= extra
    return d


def payload(acc: AmoAccount, kind: Kind, r: Record, action: str, extra: dict[str, Any] | None = None) -> str:
    body = {
        _KEY[kind]: {action: [entity_fields(acc, kind, r, action, extra or {})]},
        "account": {"subdomain": acc.subdomain, "id": acc.account_id, "_links": {"self": acc.public_base or ""}},
    }
    pairs: list[tuple[str, str]] = []
    for key, value in body.items():
        _flatten(key, value, pairs)
    return urlencode(pairs)


class WebhookSender:
    """Posts payloads in the background on the server's event loop; counts outcomes."""

    def __init__(self) -> None:
        self.sent = 0
        self.failed = 0
        self.log: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, url: str, body: str, timeout: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._post(url, body, timeout))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, url: str, body: str, wait: float) -> None:
        status: int | None = None
        try:
            async with httpx.AsyncClient(timeout=wait) as client:
                resp = await client.post(
                    url,
                    content=body.encode(),
                    headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "amoCRM-Webhooks/3.0"},
                )
                status = resp.status_code
        except httpx.HTTPError:
            status = None
        ok = status is not None and 100 <= status <= 299
        if ok:
            self.sent += 1
        else:
            self.failed += 1
        self.log.append({"url": url, "status": status, "ok": ok})
        del self.log[:-200]
