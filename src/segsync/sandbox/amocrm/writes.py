"""PATCH of leads/contacts/companies (A-CONTACTS, leads-api, K-TAGS): validate the whole batch, then apply.

Tags: ``_embedded.tags`` replaces the list (``null`` detaches all) and, when present, the delta
fields ``tags_to_add`` / ``tags_to_delete`` are ignored (PHP ``MutateTagsTrait``). Unknown tag names
in ``tags_to_add`` create the tag. A batch with one invalid element is refused as a whole (400 with
``validation-errors`` per ``request_id``) — partial success is UNVERIFIED, the harsher case is used.
"""

from __future__ import annotations

from typing import Any

from segsync.sandbox.amocrm.account import AmoAccount
from segsync.sandbox.amocrm.mapping import LOST_STATUS_ID, WON_STATUS_ID, FieldDef, email_enum, phone_enum
from segsync.sandbox.amocrm.model import Kind, Record, cf_bytes, cf_list
from segsync.sandbox.amocrm.problems import ValidationErrors

_INT_FIELDS = (
    "responsible_user_id",
    "closed_at",
    "created_at",
    "updated_at",
    "loss_reason_id",
    "created_by",
    "updated_by",
)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_item(acc: AmoAccount, kind: Kind, item: Any, rid: str, errs: ValidationErrors, *, need_id: bool) -> None:
    if not isinstance(item, dict):
        errs.add(rid, "InvalidType", "", "This value should be of type object.")
        return
    if need_id:
        if not _is_int(item.get("id")):
            errs.add(rid, "NotBlank" if "id" not in item else "InvalidType", "id", "This value should be of type int.")
        elif acc.tables[kind].get(item["id"]) is None:
            errs.add(rid, "NotFound", "id", "Entity not found")
    if "name" in item and not isinstance(item["name"], str):
        errs.add(rid, "InvalidType", "name", "This value should be of type string.")
    for key in _INT_FIELDS:
        if key in item and item[key] is not None and not _is_int(item[key]):
            errs.add(rid, "InvalidType", key, "This value should be of type int.")
    responsible = item.get("responsible_user_id")
    if _is_int(responsible) and responsible not in acc.user_ids:
        errs.add(rid, "NotSupportedChoice", "responsible_user_id", "The value you selected is not a valid choice.")
    if kind == "contacts":
        for key in ("first_name", "last_name"):
            if key in item and not isinstance(item[key], str):
                errs.add(rid, "InvalidType", key, "This value should be of type string.")
    if kind == "leads":
        if "price" in item and not _is_int(item["price"]):
            errs.add(rid, "InvalidType", "price", "This value should be of type int.")
        _validate_status(acc, item, rid, errs)
    _validate_cf(acc, kind, item.get("custom_fields_values", []), rid, errs)
    for key in ("tags_to_add", "tags_to_delete"):
        if key in item:
            _validate_tag_list(item[key], key, rid, errs)
    emb = item.get("_embedded")
    if emb is not None:
        if not isinstance(emb, dict):
            errs.add(rid, "InvalidType", "_embedded", "This value should be of type object.")
        elif "tags" in emb and emb["tags"] is not None:
            _validate_tag_list(emb["tags"], "_embedded.tags", rid, errs)


def _validate_status(acc: AmoAccount, item: dict[str, Any], rid: str, errs: ValidationErrors) -> None:
    for key in ("status_id", "pipeline_id"):
        if key in item and not _is_int(item[key]):
            errs.add(rid, "InvalidType", key, "This value should be of type int.")
            return
    pipeline = item.get("pipeline_id")
    if pipeline is not None and pipeline not in acc.pipeline_statuses:
        errs.add(rid, "NotSupportedChoice", "pipeline_id", "The value you selected is not a valid choice.")
        return
    if "status_id" in item:
        if pipeline is None and _is_int(item.get("id")):
            current = acc.tables["leads"].get(item["id"])
            pipeline = current.pipeline_id if current else None
        allowed = acc.pipeline_statuses.get(pipeline, acc.statuses) if pipeline is not None else acc.statuses
        if item["status_id"] not in allowed:
            errs.add(rid, "NotSupportedChoice", "status_id", "The value you selected is not a valid choice.")


def _validate_tag_list(value: Any, path: str, rid: str, errs: ValidationErrors) -> None:
    if not isinstance(value, list):
        errs.add(rid, "InvalidType", path, "This value should be of type array.")
        return
    for i, tag in enumerate(value):
        ok = isinstance(tag, dict) and (
            _is_int(tag.get("id")) or (isinstance(tag.get("name"), str) and tag["name"].strip() != "")
        )
        if not ok:
            errs.add(rid, "NotBlank", f"{path}.{i}", "Tag id or name is required.")


def _field_for(acc: AmoAccount, kind: Kind, spec: dict[str, Any]) -> FieldDef | None:
    fields = acc.fields[kind]
    if _is_int(spec.get("field_id")):
        return fields.get(spec["field_id"])
    code = spec.get("field_code")
    if isinstance(code, str):
        return next((f for f in fields.values() if f.code == code), None)
    return None


def _validate_cf(acc: AmoAccount, kind: Kind, cfv: Any, rid: str, errs: ValidationErrors) -> None:
    if cfv is None:
        return
    if not isinstance(cfv, list):
        errs.add(rid, "InvalidType", "custom_fields_values", "This value should be of type array.")
        return
    for i, spec in enumerate(cfv):
        if not isinstance(spec, dict) or _field_for(acc, kind, spec) is None:
            errs.add(
                rid,
                "NotSupportedChoice",
                f"custom_fields_values.{i}.field_id",
                "The value you selected is not a valid choice.",
            )
            continue
        values = spec.get("values")
        if values is not None and (not isinstance(values, list) or not all(isinstance(v, dict) for v in values)):
            errs.add(rid, "InvalidType", f"custom_fields_values.{i}.values", "This value should be of type array.")


def _cf_value(fd: FieldDef, v: dict[str, Any]) -> dict[str, Any]:
    value = v.get("value")
    if fd.type == "multitext":
        code = v.get("enum_code") or (fd.enum_value(v["enum_id"]) if v.get("enum_id") is not None else None)
        if code not in fd.enums:
            code = (phone_enum if fd.code == "PHONE" else email_enum)(str(value or ""))
        return {"value": value, "enum_id": fd.enums[code], "enum_code": code}
    if fd.type == "select":
        enum_id = v.get("enum_id")
        if enum_id is None and value is not None:
            enum_id = fd.enums.get(str(value))
        name = fd.enum_value(enum_id) if enum_id is not None else value
        return {"value": name, "enum_id": enum_id}
    return {"value": value}


def apply_item(acc: AmoAccount, kind: Kind, r: Record, item: dict[str, Any], actor: int) -> None:
    """Apply one validated PATCH element: fields, custom fields, tags; log events; notify; bump updated_at."""
    hooks: list[tuple[str, dict[str, Any]]] = []
    if "name" in item and item["name"] != r.name:
        acc.log(
            "name_field_changed",
            kind,
            r.id,
            actor,
            [{"name_field_value": {"name": item["name"]}}],
            [{"name_field_value": {"name": r.name}}],
        )
        r.name = item["name"]
    if kind == "contacts":
        for key in ("first_name", "last_name"):
            if key in item:
                setattr(r, key, item[key])
    if kind == "leads":
        if "price" in item and item["price"] != r.price:
            acc.log(
                "sale_field_changed",
                kind,
                r.id,
                actor,
                [{"sale_field_value": {"sale": item["price"]}}],
                [{"sale_field_value": {"sale": r.price}}],
            )
            r.price = item["price"]
        _apply_status(acc, r, item, actor, hooks)
        if "loss_reason_id" in item:
            r.loss_reason_id = item["loss_reason_id"]
    if "responsible_user_id" in item and item["responsible_user_id"] != r.responsible_user_id:
        old = r.responsible_user_id
        acc.log(
            "entity_responsible_changed",
            kind,
            r.id,
            actor,
            [{"responsible_user": {"id": item["responsible_user_id"]}}],
            [{"responsible_user": {"id": old}}],
        )
        r.responsible_user_id = item["responsible_user_id"]
        hooks.append(("responsible", {"old_responsible_user_id": old}))
    if item.get("custom_fields_values"):
        _apply_cf(acc, kind, r, item["custom_fields_values"], actor)
    _apply_tags(acc, kind, r, item, actor)
    at = item.get("updated_at") if _is_int(item.get("updated_at")) else None
    acc.touch(kind, r, actor, at=at)
    for action, extra in hooks:
        acc.notify(kind, r, action, extra)
    acc.notify(kind, r, "update")


def _apply_status(acc: AmoAccount, r: Record, item: dict[str, Any], actor: int, hooks: list[Any]) -> None:
    new_pipeline = item.get("pipeline_id", r.pipeline_id)
    new_status = item.get("status_id", r.status_id)
    if "status_id" not in item and new_pipeline != r.pipeline_id:
        new_status = next(s.id for p in acc.pipelines if p.id == new_pipeline for s in p.statuses if s.type == 0)
    if (new_status, new_pipeline) == (r.status_id, r.pipeline_id):
        if "closed_at" in item:
            r.closed_at = item["closed_at"]
        return
    acc.log(
        "lead_status_changed",
        "leads",
        r.id,
        actor,
        [{"lead_status": {"id": new_status, "pipeline_id": new_pipeline}}],
        [{"lead_status": {"id": r.status_id, "pipeline_id": r.pipeline_id}}],
    )
    hooks.append(("status", {"old_status_id": r.status_id, "old_pipeline_id": r.pipeline_id}))
    r.status_id, r.pipeline_id = new_status, new_pipeline
    if new_status in (WON_STATUS_ID, LOST_STATUS_ID):
        r.closed_at = item.get("closed_at") or r.closed_at or acc.now()
    else:
        r.closed_at = item.get("closed_at")


def _apply_cf(acc: AmoAccount, kind: Kind, r: Record, cfv: list[dict[str, Any]], actor: int) -> None:
    current = {f["field_id"]: f for f in (cf_list(r) or [])}
    for spec in cfv:
        fd = _field_for(acc, kind, spec)
        assert fd is not None  # validated
        values = spec.get("values")
        if not values:  # null or [] clears the field
            current.pop(fd.id, None)
            new = None
        else:
            new = {
                "field_id": fd.id,
                "field_name": fd.name,
                "field_code": fd.code,
                "field_type": fd.type,
                "values": [_cf_value(fd, v) for v in values],
            }
            current[fd.id] = new
        first = new["values"][0] if new else {}
        acc.log(
            f"custom_field_{fd.id}_value_changed",
            kind,
            r.id,
            actor,
            [
                {
                    "custom_field_value": {
                        "field_id": fd.id,
                        "field_type": fd.type,
                        "enum_id": first.get("enum_id"),
                        "text": str(first.get("value", "")),
                    }
                }
            ]
            if new
            else [],
        )
    r.cf = cf_bytes(list(current.values()))


def _apply_tags(acc: AmoAccount, kind: Kind, r: Record, item: dict[str, Any], actor: int) -> None:
    tags = acc.tags[kind]
    emb = item.get("_embedded")
    old = r.tags
    if isinstance(emb, dict) and "tags" in emb:
        wanted = emb["tags"] or []
        ids = [tags.resolve(t, create=True) for t in wanted]
        r.tags = tuple(dict.fromkeys(i for i in ids if i is not None))
    else:
        new = list(old)
        for t in item.get("tags_to_add") or []:
            tag_id = tags.resolve(t, create=True)
            if tag_id is not None and tag_id not in new:
                new.append(tag_id)
        for t in item.get("tags_to_delete") or []:
            tag_id = tags.resolve(t, create=False)
            if tag_id in new:
                new.remove(tag_id)
        r.tags = tuple(new)
    for tag_id in r.tags:
        if tag_id not in old:
            acc.log("entity_tag_added", kind, r.id, actor, [{"tag": {"name": tags.names[tag_id]}}])
    for tag_id in old:
        if tag_id not in r.tags:
            acc.log("entity_tag_deleted", kind, r.id, actor, [], [{"tag": {"name": tags.names[tag_id]}}])
