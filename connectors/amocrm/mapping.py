"""amoCRM JSON → normalized records. Pure functions: no I/O, no clock.

Anything that cannot be mapped raises :class:`~segsync.errors.RecordRejected`; the pager turns it
into a quarantined :class:`~segsync.contract.Rejected` and the run goes on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from segsync.contacts import normalize_email, normalize_phone
from segsync.contract import Customer, CustomerKind, CustomerRef, Deal, RemoteTask, Stage, Touch, TouchKind, User
from segsync.errors import RecordRejected

WON_STATUS_ID = 142  # fixed system ids, present in every pipeline
LOST_STATUS_ID = 143

#: Field names (any language amoCRM/Kommo ship) that feed the well-known segmentation attributes.
DEFAULT_FIELD_NAMES: dict[str, tuple[str, ...]] = {
    "city": ("город", "city", "ciudad", "cidade"),
    "industry": ("отрасль", "сфера деятельности", "industry", "industria", "indústria"),
    "source": ("источник", "source", "канал", "channel", "fuente", "fonte"),
    "type": ("тип", "тип клиента", "type", "customer type", "tipo"),
    "currency": ("валюта", "currency", "moneda", "moeda"),
}
_STRIP = ("_links",)


@dataclass(frozen=True)
class MappingOptions:
    """Per-source knobs of the mapping."""

    phone_region: str = "RU"
    currency: str | None = None  # the account's currency (amoCRM has exactly one)
    fields: Mapping[str, str] = field(default_factory=dict)  # feature → CRM field name or id


def _id(raw: Mapping[str, Any], key: str = "id", *, required: bool = True) -> str | None:
    value = raw.get(key)
    if value is None or value == "" or (value == 0 and key != "id"):
        if required:
            raise RecordRejected(f"missing {key}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RecordRejected(f"{key} is not an id: {type(value).__name__}")
    text = str(value)
    if not text.isdigit():
        raise RecordRejected(f"{key} is not numeric")
    return text


def unix_to_utc(value: Any, what: str = "timestamp") -> datetime | None:
    """amoCRM sends Unix seconds everywhere in v4; null stays None, anything else is a bad record."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise RecordRejected(f"{what} is not a Unix timestamp")
    try:
        seconds = int(value) if isinstance(value, int | str) else float(value)
    except (TypeError, ValueError):
        raise RecordRejected(f"{what} is not a Unix timestamp") from None
    if seconds < 0 or seconds > 32503680000:  # year 3000: garbage, not a date
        raise RecordRejected(f"{what} out of range")
    return datetime.fromtimestamp(seconds, tz=UTC)


def to_decimal(value: Any, what: str = "price") -> Decimal | None:
    """Prices arrive as int (or float on accounts with minor units); go through str to keep them exact."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RecordRejected(f"{what} is not a number")
    try:
        number = Decimal(str(value).replace(" ", "").replace(",", "."))
    except InvalidOperation:
        raise RecordRejected(f"{what} is not a number") from None
    if not number.is_finite():
        raise RecordRejected(f"{what} is not a finite number")
    return number


def _cf_values(cf: Mapping[str, Any]) -> list[Any]:
    values = cf.get("values") or []
    if not isinstance(values, list):
        raise RecordRejected(f"values of custom field {str(cf.get('field_id'))[:20]} is not a list")
    out = []
    for item in values:
        if isinstance(item, Mapping):
            if item.get("value") not in (None, ""):
                out.append(item.get("value"))
        elif item not in (None, ""):
            out.append(item)
    return out


def custom_fields(raw: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    cfs = raw.get("custom_fields_values")
    if cfs is None:
        return []
    if not isinstance(cfs, list):
        raise RecordRejected("custom_fields_values is not a list")
    return [cf for cf in cfs if isinstance(cf, Mapping)]


def _scalar(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else values


def field_attrs(cfs: Iterable[Mapping[str, Any]], mapped: Mapping[str, str]) -> dict[str, Any]:
    """Segmentation attributes: UTM fields by code, well-known names, then the source's ``fields:`` map."""
    attrs: dict[str, Any] = {}
    cfs = list(cfs)
    by_name = {str(cf.get("field_name") or "").strip().lower(): cf for cf in cfs}
    by_id = {str(cf.get("field_id")): cf for cf in cfs}
    for cf in cfs:
        code = str(cf.get("field_code") or "").upper()
        values = _cf_values(cf)
        if values and (code.startswith("UTM_") or code in ("GCLID", "FBCLID", "REFERRER")):
            attrs[code.lower()] = _scalar(values)
    for attr, names in DEFAULT_FIELD_NAMES.items():
        for name in names:
            cf = by_name.get(name)
            if cf is not None and _cf_values(cf):
                attrs[attr] = _scalar(_cf_values(cf))
                break
    for feature, ref in mapped.items():
        cf = by_id.get(str(ref)) or by_name.get(str(ref).strip().lower())
        if cf is not None:
            values = _cf_values(cf)
            attrs[feature] = _scalar(values) if values else None
    return attrs


def contact_channels(cfs: Iterable[Mapping[str, Any]], region: str) -> tuple[list[str], list[str]]:
    phones: list[str] = []
    emails: list[str] = []
    for cf in cfs:
        code = str(cf.get("field_code") or "").upper()
        if code == "PHONE":
            for value in _cf_values(cf):
                phone = normalize_phone(value, region)
                if phone and phone not in phones:
                    phones.append(phone)
        elif code == "EMAIL":
            for value in _cf_values(cf):
                email = normalize_email(value)
                if email and email not in emails:
                    emails.append(email)
    return phones, emails


def _embedded(raw: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    emb = raw.get("_embedded") or {}
    items = emb.get(key) if isinstance(emb, Mapping) else None
    return [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []


def tag_names(raw: Mapping[str, Any]) -> list[str]:
    return [str(t.get("name")) for t in _embedded(raw, "tags") if t.get("name")]


def slim(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The record as stored in ``raw``: without HAL links (they only repeat the base URL)."""
    out = {k: v for k, v in raw.items() if k not in _STRIP}
    emb = out.get("_embedded")
    if isinstance(emb, Mapping):
        out["_embedded"] = {
            k: [{kk: vv for kk, vv in i.items() if kk not in _STRIP} if isinstance(i, Mapping) else i for i in v]
            if isinstance(v, list)
            else v
            for k, v in emb.items()
        }
    return out


def map_user(raw: Mapping[str, Any]) -> User:
    rights = raw.get("rights") if isinstance(raw.get("rights"), Mapping) else {}
    active = rights.get("is_active", True) if rights else True
    return User(
        remote_id=_id(raw) or "",
        name=raw.get("name"),
        active=bool(active),
        raw={k: raw[k] for k in ("id", "name", "lang", "rights") if k in raw},
    )


def map_pipelines(pipelines: Iterable[Mapping[str, Any]]) -> list[Stage]:
    stages: list[Stage] = []
    for pipeline in pipelines:
        pid = _id(pipeline)
        for status in _embedded(pipeline, "statuses"):
            sid = _id(status)
            semantic = "won" if sid == str(WON_STATUS_ID) else "lost" if sid == str(LOST_STATUS_ID) else "open"
            stages.append(
                Stage(
                    pipeline_id=pid or "",
                    stage_id=sid or "",
                    semantic=semantic,
                    name=status.get("name"),
                    pipeline_name=pipeline.get("name"),
                    sort=int(status.get("sort") or 0),
                    raw=slim(status),
                )
            )
    return stages


def map_customer(raw: Mapping[str, Any], kind: CustomerKind, opts: MappingOptions) -> Customer:
    remote_id = _id(raw)
    cfs = custom_fields(raw)
    phones, emails = contact_channels(cfs, opts.phone_region)
    name = raw.get("name")
    if not name and kind == "contact":
        name = " ".join(p for p in (raw.get("first_name"), raw.get("last_name")) if isinstance(p, str) and p) or None
    company_id = None
    if kind == "contact":
        companies = _embedded(raw, "companies")
        company_id = _id(companies[0], required=False) if companies else None
    attrs = field_attrs(cfs, opts.fields)
    tags = tag_names(raw)
    if tags:
        attrs["tags"] = tags
    return Customer(
        kind=kind,
        remote_id=remote_id or "",
        name=name if isinstance(name, str) else None,
        responsible_id=_id(raw, "responsible_user_id", required=False),
        company_id=company_id,
        created_at=unix_to_utc(raw.get("created_at"), "created_at"),
        updated_at=unix_to_utc(raw.get("updated_at"), "updated_at"),
        phones=phones,
        emails=emails,
        attrs=attrs,
        raw=slim(raw),
    )


def deal_status(status_id: str | None) -> str:
    if status_id == str(WON_STATUS_ID):
        return "won"
    if status_id == str(LOST_STATUS_ID):
        return "lost"
    return "open"


def lead_contacts(raw: Mapping[str, Any]) -> list[str]:
    """Contact ids of a lead (``with=contacts``), the main contact first."""
    contacts = _embedded(raw, "contacts")
    ordered = sorted(contacts, key=lambda c: not c.get("is_main"))
    return [i for i in (_id(c, required=False) for c in ordered) if i]


def map_deal(raw: Mapping[str, Any], opts: MappingOptions) -> Deal:
    remote_id = _id(raw)
    status_id = _id(raw, "status_id", required=False)
    companies = _embedded(raw, "companies")
    amount = to_decimal(raw.get("price"))
    cfs = custom_fields(raw)
    attrs = field_attrs(cfs, opts.fields)
    for key in ("loss_reason_id", "source_id"):
        if raw.get(key):
            attrs[key] = str(raw[key])
    tags = tag_names(raw)
    if tags:
        attrs["tags"] = tags
    status = deal_status(status_id)
    # amoCRM has one account currency; a "Currency" custom field (when an account keeps one) overrides it,
    # and then the amount is not in the base currency.
    own = str(attrs.get("currency") or "").strip().upper()
    currency = own if len(own) == 3 and own.isalpha() else opts.currency
    closed_at = unix_to_utc(raw.get("closed_at"), "closed_at")
    return Deal(
        remote_id=remote_id or "",
        status=status,  # type: ignore[arg-type]
        pipeline_id=_id(raw, "pipeline_id", required=False),
        stage_id=status_id,
        title=raw.get("name") if isinstance(raw.get("name"), str) else None,
        company_id=_id(companies[0], required=False) if companies else None,
        contact_ids=lead_contacts(raw),
        amount=amount,
        currency=currency,
        amount_base=amount if currency == opts.currency else None,
        responsible_id=_id(raw, "responsible_user_id", required=False),
        created_at=unix_to_utc(raw.get("created_at"), "created_at"),
        closed_at=closed_at if status != "open" else None,
        updated_at=unix_to_utc(raw.get("updated_at"), "updated_at"),
        attrs=attrs,
        raw=slim(raw),
    )


def touch_kind(task_type_id: Any, types: Mapping[str, int]) -> TouchKind:
    if task_type_id == types.get("meeting", 2):
        return "meeting"
    if task_type_id == types.get("call", 1):
        return "call"
    return "task"


def task_customer(raw: Mapping[str, Any]) -> tuple[str, str] | None:
    """(entity_type, entity_id) a task is bound to, or None for a free-standing task."""
    entity_type = raw.get("entity_type")
    entity_id = _id(raw, "entity_id", required=False)
    if entity_type not in ("contacts", "companies", "leads") or entity_id is None:
        return None
    return entity_type, entity_id


def map_touch(raw: Mapping[str, Any], kind: CustomerKind, customer_id: str, types: Mapping[str, int]) -> Touch:
    """A task as a touch: a completed task happened at its last update; an open one is planned for its due time."""
    completed = bool(raw.get("is_completed"))
    at = unix_to_utc(raw.get("updated_at" if completed else "complete_till"), "task time")
    if at is None:
        raise RecordRejected("task has no time")
    return Touch(
        remote_id=f"task:{_id(raw)}",
        customer_kind=kind,
        customer_id=customer_id,
        kind=touch_kind(raw.get("task_type_id"), types),
        at=at,
        completed=completed,
        raw={k: raw.get(k) for k in ("id", "entity_type", "entity_id", "task_type_id", "responsible_user_id")},
    )


ENTITY_KIND: dict[str, CustomerKind] = {"contacts": "contact", "companies": "company"}
KIND_ENTITY: dict[str, str] = {"contact": "contacts", "company": "companies"}


def map_remote_task(raw: Mapping[str, Any]) -> RemoteTask | None:
    bound = task_customer(raw)
    if bound is None or bound[0] not in ENTITY_KIND:
        return None
    return RemoteTask(
        remote_id=_id(raw) or "",
        customer=CustomerRef(ENTITY_KIND[bound[0]], bound[1]),
        text=str(raw.get("text") or ""),
        completed=bool(raw.get("is_completed")),
        responsible_id=_id(raw, "responsible_user_id", required=False),
        due=unix_to_utc(raw.get("complete_till"), "complete_till"),
    )


def updated_at(raw: Mapping[str, Any]) -> int:
    """The paging key; a record without it cannot be placed in the scan and is rejected."""
    value = raw.get("updated_at")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RecordRejected("missing updated_at")
    try:
        return int(value)
    except ValueError:
        raise RecordRejected("updated_at is not a Unix timestamp") from None
