"""Write-back: segsync's tags (delta fields only) and manager tasks, batched by ≤ 50.

Tags go through ``tags_to_add`` / ``tags_to_delete`` by name — never ``_embedded.tags``, which
replaces every tag of the entity and would wipe managers' own tags. A tag PATCH is idempotent, so a
timed-out batch is split and sent again (amoCRM's 504 advice). A task POST is not: no idempotency
key exists, so a timeout makes the whole batch *ambiguous* (the core looks the marker up with
``find_tasks`` before any retry) and later batches get smaller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectors.amocrm.mapping import KIND_ENTITY, map_remote_task
from connectors.amocrm.options import AmoCRMTaskTypes
from connectors.amocrm.paging import embedded, pages
from connectors.amocrm.transport import Reply, Transport
from segsync.contract import CustomerRef, LabelChange, RemoteTask, TaskRequest, WriteResult
from segsync.errors import AmbiguousWrite, RetriableCrmError
from segsync.logs import get_logger

log = get_logger("connectors.amocrm.writes")
BATCH = 50
TASK_TEXT_MAX = 4000


def tag_delta(change: LabelChange, prefix: str) -> tuple[list[str], list[str]]:
    """(tags to add, tags to delete): every wanted tag is (re)added — idempotent and self-healing if a manager
    removed one; only segsync-prefixed tags that are no longer wanted are deleted."""
    after = sorted({f"{prefix}{v}" for v in change.after.values() if v})
    before = {f"{prefix}{v}" for v in change.before.values() if v}
    return after, sorted(before - set(after))


def validation_errors(body: Any) -> dict[int, str]:
    """``validation-errors[].request_id`` (our position) → a short reason."""
    out: dict[int, str] = {}
    if not isinstance(body, Mapping):
        return out
    for entry in body.get("validation-errors") or []:
        if not isinstance(entry, Mapping):
            continue
        try:
            position = int(entry.get("request_id"))
        except (TypeError, ValueError):
            continue
        errors = entry.get("errors") or []
        reason = "; ".join(
            f"{e.get('path')}: {e.get('code')} {e.get('detail') or ''}".strip()
            for e in errors
            if isinstance(e, Mapping)
        )
        out[position] = reason or "rejected by amoCRM"
    return out


def _problem(body: Any, status: int) -> str:
    if isinstance(body, Mapping):
        return str(body.get("detail") or body.get("title") or status)
    return str(status)


class Writer:
    def __init__(self, transport: Transport, *, prefix: str, task_types: AmoCRMTaskTypes):
        self.transport = transport
        self.prefix = prefix
        self.task_types = task_types
        self.task_batch = BATCH  # shrinks after an ambiguous task POST (504 advice)
        self._tags: dict[str, set[str]] = {}  # entity → segsync tag names known to exist

    # --- tags -----------------------------------------------------------------------------------

    async def set_labels(self, changes: Sequence[LabelChange]) -> list[WriteResult]:
        results: dict[str, WriteResult] = {}
        by_entity: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for change in changes:
            entity = KIND_ENTITY.get(change.customer.kind)
            if entity is None or not change.customer.remote_id.isdigit():
                results[change.key] = WriteResult(change.key, False, error="not an amoCRM contact/company id")
                continue
            add, delete = tag_delta(change, self.prefix)
            if not add and not delete:
                results[change.key] = WriteResult(change.key, True, remote_id=change.customer.remote_id)
                continue
            item: dict[str, Any] = {"id": int(change.customer.remote_id)}
            if add:
                item["tags_to_add"] = [{"name": n} for n in add]
            if delete:
                item["tags_to_delete"] = [{"name": n} for n in delete]
            by_entity.setdefault(entity, []).append((change.key, item))
        for entity, items in by_entity.items():
            await self._ensure_tags(entity, {t["name"] for _, item in items for t in item.get("tags_to_add", [])})
            for start in range(0, len(items), BATCH):
                for result in await self._patch(f"/api/v4/{entity}", items[start : start + BATCH]):
                    results[result.key] = result
        return [results[c.key] for c in changes]

    async def _patch(
        self, path: str, items: list[tuple[str, dict[str, Any]]], *, clean: bool = False
    ) -> list[WriteResult]:
        """An idempotent batch PATCH: split on timeout/504, resend the valid rest after a 400 once."""
        body = [{**item, "request_id": str(i)} for i, (_key, item) in enumerate(items)]
        try:
            reply = await self.transport.write("PATCH", path, body, idempotent=True)
        except AmbiguousWrite as exc:
            if len(items) > 1:
                half = len(items) // 2
                log.warning("amocrm_batch_split", path=path, size=len(items))
                return [*(await self._patch(path, items[:half])), *(await self._patch(path, items[half:]))]
            return [WriteResult(items[0][0], False, error=str(exc), retriable=True, ambiguous=True)]
        except RetriableCrmError as exc:
            return [WriteResult(key, False, error=str(exc), retriable=True) for key, _ in items]
        if reply.status in (400, 422):
            bad = validation_errors(reply.body)
            if not bad:
                return [WriteResult(k, False, error=_problem(reply.body, reply.status)) for k, _ in items]
            failed = [WriteResult(items[i][0], False, error=bad[i]) for i in sorted(bad) if i < len(items)]
            rest = [pair for i, pair in enumerate(items) if i not in bad]
            if rest and not clean:
                return [*failed, *(await self._patch(path, rest, clean=True))]
            return [*failed, *(WriteResult(k, False, error="batch refused", retriable=True) for k, _ in rest)]
        ids = {str(i.get("id")) for i in embedded(reply, path.rsplit("/", 1)[-1])} if reply.body else set()
        return [WriteResult(key, True, remote_id=str(item["id"]) if not ids or str(item["id"]) in ids else None)
                for key, item in items]  # fmt: skip

    async def prepare(self, labels: Sequence[str]) -> None:
        """Nothing per label *key*: a tag is named after a label's display value (``seg:AX``), known only when
        it is written, so :meth:`set_labels` creates the tags it needs. (Creating tags named after the keys
        would leave ``seg:abc_xyz``-style tags in the account that nothing ever uses.)"""

    async def _ensure_tags(self, entity: str, names: set[str]) -> None:
        """Create the segsync tags that do not exist yet, explicitly: creation by name in ``tags_to_add`` is
        undocumented. The account's prefixed tags are listed once per connector session."""
        known = self._tags.get(entity)
        if known is None:
            known = set()
            async for items in pages(self.transport.get, f"/api/v4/{entity}/tags", "tags", {"query": self.prefix}):
                known.update(str(t.get("name")) for t in items)
            self._tags[entity] = known
        missing = sorted(names - known)
        for start in range(0, len(missing), BATCH):
            chunk = missing[start : start + BATCH]
            body = [{"name": n, "request_id": str(i)} for i, n in enumerate(chunk)]
            reply = await self.transport.write("POST", f"/api/v4/{entity}/tags", body, idempotent=True)
            if reply.status in (400, 422):
                log.warning("amocrm_tag_create_refused", entity=entity, detail=_problem(reply.body, reply.status))
            else:
                known.update(chunk)

    # --- tasks ----------------------------------------------------------------------------------

    def task_body(self, task: TaskRequest, position: int) -> dict[str, Any]:
        text = "\n".join(p for p in (task.title, task.description, task.marker) if p)
        if len(text) > TASK_TEXT_MAX:  # keep the marker: it is how a crashed push finds the task again
            text = f"{text[: TASK_TEXT_MAX - len(task.marker) - 2]}\n{task.marker}"
        body: dict[str, Any] = {
            "text": text,
            "complete_till": int(task.due.timestamp()),
            "entity_id": int(task.customer.remote_id),
            "entity_type": KIND_ENTITY[task.customer.kind],
            "task_type_id": getattr(self.task_types, task.type),
            "request_id": str(position),
        }
        if task.responsible_id and task.responsible_id.isdigit():
            body["responsible_user_id"] = int(task.responsible_id)
        return body

    async def create_tasks(self, tasks: Sequence[TaskRequest]) -> list[WriteResult]:
        results: dict[str, WriteResult] = {}
        valid = []
        for task in tasks:
            if task.customer.kind not in KIND_ENTITY or not task.customer.remote_id.isdigit():
                results[task.key] = WriteResult(task.key, False, error="not an amoCRM contact/company id")
            else:
                valid.append(task)
        start = 0
        while start < len(valid):
            chunk = valid[start : start + self.task_batch]
            start += len(chunk)
            for result in await self._post_tasks(chunk):
                results[result.key] = result
        return [results[t.key] for t in tasks]

    async def _post_tasks(self, chunk: Sequence[TaskRequest]) -> list[WriteResult]:
        body = [self.task_body(t, i) for i, t in enumerate(chunk)]
        try:
            reply = await self.transport.write("POST", "/api/v4/tasks", body, idempotent=False)
        except AmbiguousWrite as exc:
            self.task_batch = max(1, len(chunk) // 2)
            log.warning("amocrm_tasks_ambiguous", size=len(chunk), next_batch=self.task_batch)
            return [WriteResult(t.key, False, error=str(exc), retriable=True, ambiguous=True) for t in chunk]
        except RetriableCrmError as exc:  # 429 / connection refused: nothing was processed
            return [WriteResult(t.key, False, error=str(exc), retriable=True) for t in chunk]
        return self._task_results(chunk, reply)

    def _task_results(self, chunk: Sequence[TaskRequest], reply: Reply) -> list[WriteResult]:
        if reply.status in (400, 422):
            bad = validation_errors(reply.body)
            # Whether the valid rest of a refused batch was created is undocumented: look before retrying.
            return [
                WriteResult(t.key, False, error=bad[i])
                if i in bad
                else WriteResult(
                    t.key, False, error=_problem(reply.body, reply.status), retriable=True, ambiguous=bool(bad)
                )
                for i, t in enumerate(chunk)
            ]
        created = embedded(reply, "tasks")
        by_request: dict[int, str] = {}
        for n, item in enumerate(created):
            try:
                position = int(item.get("request_id"))
            except (TypeError, ValueError):
                position = n
            if item.get("id") is not None:
                by_request[position] = str(item["id"])
        return [
            WriteResult(t.key, True, remote_id=by_request[i])
            if i in by_request
            else WriteResult(t.key, False, error="not in amoCRM's answer", retriable=True, ambiguous=True)
            for i, t in enumerate(chunk)
        ]

    async def find_tasks(self, customers: Sequence[CustomerRef], marker: str) -> list[RemoteTask]:
        found: dict[str, RemoteTask] = {}
        by_entity: dict[str, list[str]] = {}
        for ref in customers:
            if ref.kind in KIND_ENTITY and ref.remote_id.isdigit():
                by_entity.setdefault(KIND_ENTITY[ref.kind], []).append(ref.remote_id)
        for entity, ids in by_entity.items():
            unique = sorted(set(ids), key=int)
            for start in range(0, len(unique), BATCH):
                params = {"filter[entity_type]": entity, "filter[entity_id][]": unique[start : start + BATCH]}
                async for items in pages(self.transport.get, "/api/v4/tasks", "tasks", params):
                    for raw in items:
                        if marker and marker not in str(raw.get("text") or ""):
                            continue
                        task = map_remote_task(raw)
                        if task is not None:
                            found[task.remote_id] = task
        return list(found.values())

    async def complete_tasks(self, keys_and_ids: Sequence[tuple[str, str]], note: str) -> list[WriteResult]:
        results: dict[str, WriteResult] = {}
        items = []
        for key, remote_id in keys_and_ids:
            if not remote_id.isdigit():
                results[key] = WriteResult(key, False, error="not an amoCRM task id")
                continue
            items.append((key, {"id": int(remote_id), "is_completed": True, "result": {"text": note}}))
        for start in range(0, len(items), BATCH):
            for result in await self._patch("/api/v4/tasks", items[start : start + BATCH]):
                results[result.key] = result
        return [results[k] for k, _ in keys_and_ids]
