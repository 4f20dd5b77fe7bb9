"""Write operations: segsync's user fields, label values, follow-up tasks / to-dos.

Labels are *string* user fields, one per label key, on contacts and companies (``UF_CRM_SG_<KEY>``).
String rather than enumeration because label values are open-ended (rule names, RFM codes): an
enumeration would need a list item created — and its numeric ID tracked — before a new value can be
written, and an ``update`` with an unknown item ID fails silently. A string field stays filterable
in the CRM list ("SHOW_FILTER") and is cleared by writing ``""``.

Every write goes 50 commands per ``batch`` with per-command results. A batch whose outcome is unknown
(timeout, 5xx after sending) yields ``ambiguous`` results for all its commands: the caller reconciles
(``find_tasks`` by marker) before retrying anything.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from connectors.bitrix24.transport import Command, Transport
from connectors.bitrix24.wire import BATCH_LIMIT, BatchReply, unwrap_list
from segsync.contract import CustomerRef, LabelChange, RemoteTask, TaskRequest, WriteResult
from segsync.errors import AmbiguousWrite, CrmError, FatalCrmError, Terminal, Transient
from segsync.logs import get_logger

log = get_logger("segsync.bitrix24")
FIELD_PREFIX = "SG_"  # short: the whole code may have 13 characters, "churn_risk" must fit
_CODE_LIMIT = 13  # FIELD_NAME ≤ 20 characters including the UF_CRM_ prefix
_ENTITY = {"contact": "contact", "company": "company"}
_BINDING = {"contact": "C", "company": "CO"}
_OWNER_TYPE = {"contact": 3, "company": 4}
TaskMode = Literal["task", "todo"]
_DONE_STATUSES = frozenset({"5", "7"})  # completed; legacy "declined"


def field_code(label: str) -> str:
    """``abc_xyz`` → ``SG_ABC_XYZ`` (the CRM adds ``UF_CRM_``); long keys get a stable hash suffix."""
    clean = re.sub(r"[^A-Z0-9_]", "_", label.upper())
    code = FIELD_PREFIX + clean
    if len(code) <= _CODE_LIMIT:
        return code
    digest = hashlib.sha1(label.encode()).hexdigest()[:4].upper()
    return f"{FIELD_PREFIX}{clean[: _CODE_LIMIT - len(FIELD_PREFIX) - 5]}_{digest}"


def field_name(label: str) -> str:
    return "UF_CRM_" + field_code(label)


def _chunks(items: Sequence[Any], size: int = BATCH_LIMIT) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _failure_result(key: str, exc: CrmError) -> WriteResult:
    return WriteResult(
        key,
        False,
        error=str(exc)[:500],
        retriable=isinstance(exc, Transient),
        ambiguous=isinstance(exc, AmbiguousWrite),
    )


async def _write_batch(
    transport: Transport,
    ops: Sequence[tuple[str, Command]],
    read: Callable[[Any], tuple[bool, str | None]],
) -> list[WriteResult]:
    """Send ``(op key, command)`` pairs in one batch; ``read`` turns a command result into (ok, remote id)."""
    commands = {f"w{i}": cmd for i, (_, cmd) in enumerate(ops)}
    try:
        reply: BatchReply = await transport.batch(commands, write=True)
    except CrmError as exc:
        if isinstance(exc, Terminal):
            raise
        log.warning("bitrix24_write_batch_failed", ops=len(ops), error=type(exc).__name__)
        return [_failure_result(key, exc) for key, _ in ops]
    out = []
    for i, (key, (method, _)) in enumerate(ops):
        ck = f"w{i}"
        if ck in reply.errors:
            exc = transport.command_failure(method, reply.errors[ck], write=True)
            out.append(_failure_result(key, exc))
        elif ck in reply.results:
            ok, remote_id = read(reply.results[ck])
            out.append(
                WriteResult(key, ok, remote_id, None if ok else f"{method} answered {reply.results[ck]!r}"[:500])
            )
        else:  # neither result nor error: the server stopped early; it may or may not have run
            out.append(WriteResult(key, False, error=f"{method}: no answer in batch", retriable=True, ambiguous=True))
    return out


class Writer:
    def __init__(self, transport: Transport, *, mode: TaskMode, portal_tz: Callable[[], tzinfo]):
        self.transport = transport
        self.mode = mode
        self.portal_tz = portal_tz
        self._fields_ready: set[tuple[str, str]] = set()

    # -- user fields ----------------------------------------------------------------------------

    async def ensure_fields(self, labels: Sequence[str]) -> None:
        """Create missing ``UF_CRM_SG_*`` string fields on contacts and companies (admin rights needed)."""
        wanted = [
            (kind, label)
            for kind in _ENTITY
            for label in dict.fromkeys(labels)
            if (kind, field_name(label)) not in self._fields_ready
        ]
        for chunk in _chunks(wanted):
            listing = {
                f"l{i}": (f"crm.{kind}.userfield.list", {"filter": {"FIELD_NAME": field_name(label)}})
                for i, (kind, label) in enumerate(chunk)
            }
            reply = await self.transport.batch(listing)
            missing = []
            for i, (kind, label) in enumerate(chunk):
                key = f"l{i}"
                if key in reply.errors:
                    raise self.transport.command_failure(listing[key][0], reply.errors[key])
                rows = unwrap_list(reply.results.get(key), None) or []
                if any(isinstance(r, Mapping) and r.get("FIELD_NAME") == field_name(label) for r in rows):
                    self._fields_ready.add((kind, field_name(label)))
                else:
                    missing.append((kind, label))
            if missing:
                await self._create_fields(missing)

    async def _create_fields(self, missing: Sequence[tuple[str, str]]) -> None:
        commands = {
            f"a{i}": (
                f"crm.{kind}.userfield.add",
                {
                    "fields": {
                        "FIELD_NAME": field_code(label),
                        "USER_TYPE_ID": "string",
                        "LABEL": f"segsync: {label}",
                        "XML_ID": f"segsync_{label}",
                        "MULTIPLE": "N",
                        "MANDATORY": "N",
                        "SHOW_FILTER": "Y",
                        "EDIT_IN_LIST": "N",
                        "SORT": 900,
                    }
                },
            )
            for i, (kind, label) in enumerate(missing)
        }
        reply = await self.transport.batch(commands, write=True)
        for i, (kind, label) in enumerate(missing):
            key = f"a{i}"
            if key in reply.errors:
                error = reply.errors[key]
                raise FatalCrmError(
                    f"cannot create user field {field_name(label)} on {kind}s: {error.description or error.code} "
                    "(creating user fields needs an administrator's webhook)",
                    method=commands[key][0],
                    code=error.code or None,
                )
            self._fields_ready.add((kind, field_name(label)))
            log.info("bitrix24_field_created", entity=kind, field=field_name(label))

    # -- labels ---------------------------------------------------------------------------------

    async def set_labels(self, changes: Sequence[LabelChange]) -> list[WriteResult]:
        await self.ensure_fields(sorted({k for c in changes for k in (*c.before, *c.after)}))
        results: dict[str, WriteResult] = {}
        ops: list[tuple[str, Command]] = []
        for change in changes:
            labels = sorted({*change.before, *change.after})
            if change.customer.kind not in _ENTITY:
                results[change.key] = WriteResult(change.key, False, error=f"unknown kind {change.customer.kind}")
                continue
            if not labels:
                results[change.key] = WriteResult(change.key, True, change.customer.remote_id)
                continue
            # Absent from `after` → cleared with "" (never None: batch would send the text "None").
            fields = {field_name(label): str(change.after.get(label) or "") for label in labels}
            params = {"id": change.customer.remote_id, "fields": fields, "params": {"REGISTER_SONET_EVENT": "N"}}
            ops.append((change.key, (f"crm.{change.customer.kind}.update", params)))
        ids = {key: str(params["id"]) for key, (_, params) in ops}
        for chunk in _chunks(ops):
            for result in await _write_batch(self.transport, chunk, lambda r: (r is True or r in ("1", 1), None)):
                results[result.key] = replace(result, remote_id=ids[result.key])
        return [results[c.key] for c in changes]

    # -- tasks ----------------------------------------------------------------------------------

    def _deadline(self, due: datetime) -> str:
        aware = due if due.tzinfo is not None else due.replace(tzinfo=UTC)
        return aware.astimezone(self.portal_tz()).isoformat(timespec="seconds")

    async def create_tasks(self, tasks: Sequence[TaskRequest]) -> list[WriteResult]:
        fallback = await self.transport.user_id()
        ops: list[tuple[str, Command]] = []
        results: dict[str, WriteResult] = {}
        for task in tasks:
            responsible = task.responsible_id or fallback
            if task.customer.kind not in _ENTITY or responsible is None:
                results[task.key] = WriteResult(task.key, False, error="no responsible user or unknown customer kind")
                continue
            text = f"{task.description}\n\n{task.marker}" if task.description else task.marker
            if self.mode == "task":
                fields = {
                    "TITLE": task.title,
                    "DESCRIPTION": text,
                    "RESPONSIBLE_ID": responsible,
                    "DEADLINE": self._deadline(task.due),
                    "UF_CRM_TASK": [f"{_BINDING[task.customer.kind]}_{task.customer.remote_id}"],
                }
                ops.append((task.key, ("tasks.task.add", {"fields": fields})))
            else:
                params = {
                    "ownerTypeId": _OWNER_TYPE[task.customer.kind],
                    "ownerId": task.customer.remote_id,
                    "deadline": self._deadline(task.due),
                    "title": task.title,
                    "description": text,
                    "responsibleId": responsible,
                }
                ops.append((task.key, ("crm.activity.todo.add", params)))
        for chunk in _chunks(ops):
            for result in await _write_batch(self.transport, chunk, _created_id):
                results[result.key] = result
        return [results[t.key] for t in tasks]

    async def find_tasks(self, customers: Sequence[CustomerRef], marker: str) -> list[RemoteTask]:
        found: list[RemoteTask] = []
        refs = [c for c in customers if c.kind in _ENTITY]
        for chunk in _chunks(refs):
            commands = {f"f{i}": self._find_command(ref, 0) for i, ref in enumerate(chunk)}
            reply = await self.transport.batch(commands)
            for i, ref in enumerate(chunk):
                key = f"f{i}"
                if key in reply.errors:
                    raise self.transport.command_failure(commands[key][0], reply.errors[key])
                rows = self._rows(reply.results.get(key))
                start = reply.nexts.get(key)
                while start:  # rare: more than 50 tasks on one customer
                    more = await self.transport.call(*self._find_command(ref, int(start)))
                    rows.extend(self._rows(more.result))
                    start = more.next
                found.extend(t for t in (self._remote(ref, r) for r in rows) if marker in t.text)
        return found

    def _find_command(self, ref: CustomerRef, start: int) -> Command:
        if self.mode == "task":
            return (
                "tasks.task.list",
                {
                    "filter": {"UF_CRM_TASK": [f"{_BINDING[ref.kind]}_{ref.remote_id}"]},
                    "select": ["ID", "TITLE", "DESCRIPTION", "STATUS", "RESPONSIBLE_ID", "DEADLINE", "UF_CRM_TASK"],
                    "order": {"ID": "asc"},
                    "start": start,
                },
            )
        return (
            "crm.activity.list",
            {
                "filter": {
                    "OWNER_TYPE_ID": _OWNER_TYPE[ref.kind],
                    "OWNER_ID": ref.remote_id,
                    "PROVIDER_ID": "CRM_TODO",
                },
                "select": ["ID", "SUBJECT", "DESCRIPTION", "COMPLETED", "RESPONSIBLE_ID", "DEADLINE"],
                "order": {"ID": "ASC"},
                "start": start,
            },
        )

    def _rows(self, result: Any) -> list[Mapping[str, Any]]:
        rows = unwrap_list(result, "tasks" if self.mode == "task" else None) or []
        return [r for r in rows if isinstance(r, Mapping)]

    def _remote(self, ref: CustomerRef, row: Mapping[str, Any]) -> RemoteTask:
        if self.mode == "task":
            text = f"{row.get('title') or ''}\n{row.get('description') or ''}"
            return RemoteTask(
                str(row.get("id")),
                ref,
                text,
                str(row.get("status")) in _DONE_STATUSES,
                _opt(row.get("responsibleId")),
                _when(row.get("deadline")),
            )
        text = f"{row.get('SUBJECT') or ''}\n{row.get('DESCRIPTION') or ''}"
        return RemoteTask(
            str(row.get("ID")),
            ref,
            text,
            row.get("COMPLETED") == "Y",
            _opt(row.get("RESPONSIBLE_ID")),
            _when(row.get("DEADLINE")),
        )

    async def complete_tasks(self, keys_and_ids: Sequence[tuple[str, str]]) -> list[WriteResult]:
        ops: list[tuple[str, Command]] = []
        for key, remote_id in keys_and_ids:
            if self.mode == "task":
                ops.append((key, ("tasks.task.complete", {"taskId": remote_id})))
            else:
                ops.append((key, ("crm.activity.update", {"id": remote_id, "fields": {"COMPLETED": "Y"}})))
        results: dict[str, WriteResult] = {}
        ids = dict(keys_and_ids)
        for chunk in _chunks(ops):
            for result in await _write_batch(self.transport, chunk, lambda r: (r not in (False, None, ""), None)):
                results[result.key] = replace(result, remote_id=ids[result.key])
        return [results[key] for key, _ in keys_and_ids]


def _created_id(result: Any) -> tuple[bool, str | None]:
    """``tasks.task.add`` → ``{"task": {"id": "3711"}}``; ``crm.activity.todo.add`` → ``{"id": 999}``."""
    if isinstance(result, Mapping):
        inner = result.get("task") if isinstance(result.get("task"), Mapping) else result
        ident = inner.get("id") or inner.get("ID")
        if ident not in (None, "", 0):
            return True, str(ident)
    return False, None


def _opt(value: Any) -> str | None:
    return str(value) if value not in (None, "", 0, "0") else None


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
