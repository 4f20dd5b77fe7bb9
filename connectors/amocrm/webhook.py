"""amoCRM account webhooks: form-encoded, PHP bracket keys, *unsigned*.

Authenticity therefore rests on a long random secret in the URL path (compared in constant time)
plus the account block (subdomain / id) matching this source. A webhook is only a hint: the daemon
turns it into an incremental pull that re-reads the entity through the API.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from typing import Any

from segsync.contract import ChangeHint
from segsync.errors import WebhookRejected

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_DELETE_ACTIONS = {"delete"}


def unflatten(form: Mapping[str, Any]) -> dict[str, Any]:
    """``leads[update][0][id]=1`` → ``{"leads": {"update": {"0": {"id": "1"}}}}`` (lists stay dicts by index)."""
    items = form.multi_items() if hasattr(form, "multi_items") else form.items()
    root: dict[str, Any] = {}
    for key, value in items:
        match = _KEY.match(str(key))
        if not match:
            continue
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # ``a[]``: append position
                part = str(len(node))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
    return root


def _entries(node: Any) -> list[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        return [v for v in node.values() if isinstance(v, Mapping)]
    if isinstance(node, list):
        return [v for v in node if isinstance(v, Mapping)]
    return []


def verify(
    path_secret: str | None,
    expected_secret: str | None,
    account: Mapping[str, Any],
    *,
    subdomain: str,
    account_id: int | None,
) -> None:
    if not expected_secret:
        raise WebhookRejected("webhooks are not enabled for this source (no webhook_secret)", status=403)
    if not path_secret:
        raise WebhookRejected("missing webhook secret", status=401)
    if not hmac.compare_digest(path_secret.encode(), expected_secret.encode()):
        raise WebhookRejected("wrong webhook secret", status=403)
    got_sub = str(account.get("subdomain") or "").lower()
    got_id = str(account.get("id") or "")
    if not got_sub and not got_id:
        raise WebhookRejected("webhook without an account block", status=403)
    if got_sub and got_sub != subdomain.lower():
        raise WebhookRejected("webhook for another account (subdomain)", status=403)
    if got_id and account_id is not None and got_id != str(account_id):
        raise WebhookRejected("webhook for another account (id)", status=403)


def hints(payload: Mapping[str, Any]) -> list[ChangeHint]:
    out: list[ChangeHint] = []
    seen: set[tuple[Any, ...]] = set()

    def add(hint: ChangeHint) -> None:
        marker = (hint.entity, hint.remote_id, hint.deleted, hint.kind)
        if marker not in seen:
            seen.add(marker)
            out.append(hint)

    for key, actions in payload.items():
        if not isinstance(actions, Mapping) or key not in ("leads", "contacts", "companies", "tasks"):
            continue  # unsorted, catalogs, message, talk, account: nothing segsync pulls
        for action, node in actions.items():
            deleted = action in _DELETE_ACTIONS
            for item in _entries(node):
                note = item.get("note") if isinstance(item.get("note"), Mapping) else None
                remote_id = item.get("element_id") if action == "note" else item.get("id")
                if action == "note" and remote_id is None and note is not None:
                    remote_id = note.get("element_id")
                rid = str(remote_id) if remote_id not in (None, "") else None
                if key == "leads":
                    add(ChangeHint("deals", rid, deleted))
                elif key == "tasks":
                    add(ChangeHint("touches", rid, deleted))
                elif key == "companies" or str(item.get("type") or "") == "company":
                    # Companies also arrive under ``contacts`` with type=company (K-WH).
                    add(ChangeHint("companies", rid, deleted, "company"))
                else:
                    add(ChangeHint("contacts", rid, deleted, "contact"))
    return out


def parse(
    path_secret: str | None,
    form: Mapping[str, Any],
    *,
    expected_secret: str | None,
    subdomain: str,
    account_id: int | None,
) -> list[ChangeHint]:
    payload = unflatten(form)
    account = payload.get("account") if isinstance(payload.get("account"), Mapping) else {}
    verify(path_secret, expected_secret, account, subdomain=subdomain, account_id=account_id)
    return hints(payload)
