"""Outgoing-webhook events → change hints (pure).

Bitrix24 POSTs ``application/x-www-form-urlencoded`` bodies such as ``event=ONCRMDEALUPDATE&
data[FIELDS][ID]=7405&auth[application_token]=…``. The ``application_token`` shown when the outgoing
webhook was created is the only authenticity check, so it is compared in constant time before
anything else is read. Events carry only an ID; the daemon turns hints into a short incremental pull
(deletions are applied directly).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from segsync.contract import ChangeHint, CustomerKind, Entity
from segsync.errors import WebhookRejected

_EVENTS: dict[str, tuple[Entity, CustomerKind | None]] = {
    "CONTACT": ("contacts", "contact"),
    "COMPANY": ("companies", "company"),
    "DEAL": ("deals", None),
    "ACTIVITY": ("touches", None),
}


def _field(form: Mapping[str, Any], *path: str) -> Any:
    """``data[FIELDS][ID]`` from a flat form, or ``form["data"]["FIELDS"]["ID"]`` from a parsed one."""
    flat = path[0] + "".join(f"[{p}]" for p in path[1:])
    if flat in form:
        value = form[flat]
        return value[0] if isinstance(value, list) and value else value
    node: Any = form
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def parse_event(form: Mapping[str, Any], expected_token: str | None) -> list[ChangeHint]:
    if not expected_token:
        raise WebhookRejected("no application_token is configured for this source", status=403)
    token = _field(form, "auth", "application_token")
    if not token:
        raise WebhookRejected("application_token missing", status=401)
    if not hmac.compare_digest(str(token).encode(), expected_token.encode()):
        raise WebhookRejected("application_token does not match", status=403)
    event = str(_field(form, "event") or "").upper()
    if not event.startswith("ONCRM"):
        return []
    for name, (entity, kind) in _EVENTS.items():
        prefix = "ONCRM" + name
        suffix = event[len(prefix) :]
        if event.startswith(prefix) and suffix in ("ADD", "UPDATE", "DELETE", "MOVETOCATEGORY"):
            remote_id = _field(form, "data", "FIELDS", "ID")
            text = str(remote_id).strip() if remote_id not in (None, "") else None
            return [ChangeHint(entity, text, deleted=suffix == "DELETE", kind=kind)]
    return []
