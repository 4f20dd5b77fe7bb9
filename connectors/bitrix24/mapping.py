"""Bitrix24 rows → normalized records (pure).

Classic ``crm.contact.list``/``crm.company.list`` rows carry UPPER_CASE string values; ``crm.item.list``
deal items carry camelCase typed values. A row that cannot be mapped becomes :class:`Rejected` with
the reason, so one bad record never stops a pull.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from segsync.contacts import normalize_email, normalize_phone
from segsync.contract import Currency, Customer, CustomerKind, Deal, Rejected, Stage, StageSemantic, Touch, User

_SEMANTIC: dict[str, StageSemantic] = {"S": "won", "F": "lost", "P": "open"}
_EXTRA_SEMANTIC: dict[str, StageSemantic] = {"success": "won", "failure": "lost", "process": "open"}
_SPACES = re.compile(r"[\s\u00a0\u202f']")
_UTM = ("UTM_SOURCE", "UTM_MEDIUM", "UTM_CAMPAIGN", "UTM_CONTENT", "UTM_TERM")
_UTM_ATTRS = tuple((name, name.lower()) for name in _UTM)

CONTACT_SELECT = (
    "ID",
    "NAME",
    "SECOND_NAME",
    "LAST_NAME",
    "TYPE_ID",
    "SOURCE_ID",
    "COMPANY_ID",
    "ASSIGNED_BY_ID",
    "DATE_CREATE",
    "DATE_MODIFY",
    "ADDRESS_CITY",
    *_UTM,
    "PHONE",
    "EMAIL",
)
COMPANY_SELECT = (
    "ID",
    "TITLE",
    "COMPANY_TYPE",
    "INDUSTRY",
    "EMPLOYEES",
    "REVENUE",
    "CURRENCY_ID",
    "IS_MY_COMPANY",
    "ASSIGNED_BY_ID",
    "DATE_CREATE",
    "DATE_MODIFY",
    "ADDRESS_CITY",
    *_UTM,
    "PHONE",
    "EMAIL",
)
DEAL_SELECT = (
    "id",
    "title",
    "categoryId",
    "stageId",
    "stageSemanticId",
    "opportunity",
    "currencyId",
    "companyId",
    "contactId",
    "contactIds",
    "assignedById",
    "createdTime",
    "updatedTime",
    "closedate",
    "closed",
    "movedTime",
    "sourceId",
    "typeId",
    "utmSource",
    "utmMedium",
    "utmCampaign",
    "utmContent",
    "utmTerm",
)
ACTIVITY_SELECT = (
    "ID",
    "OWNER_TYPE_ID",
    "OWNER_ID",
    "TYPE_ID",
    "PROVIDER_ID",
    "DIRECTION",
    "COMPLETED",
    "CREATED",
    "LAST_UPDATED",
    "START_TIME",
    "END_TIME",
    "DEADLINE",
    "RESPONSIBLE_ID",
)

OWNER_DEAL, OWNER_CONTACT, OWNER_COMPANY = 2, 3, 4


class Unmappable(ValueError):
    """A value that cannot be read; its message becomes the quarantine reason."""


@dataclass(frozen=True)
class MappingContext:
    """Portal facts the mapping needs (learned from dictionaries pulled earlier in the run)."""

    phone_region: str = "RU"
    fields: Mapping[str, str] = field(default_factory=dict)  # feature name → CRM field name
    portal_tz: tzinfo = UTC  # for date-only values
    base_currency: str | None = None
    rates: Mapping[str, Decimal] = field(default_factory=dict)  # code → base-currency units per unit
    semantics: Mapping[tuple[str, str], StageSemantic] = field(default_factory=dict)  # (pipeline, stage)


# -- values ------------------------------------------------------------------------------------


def parse_money(value: Any) -> Decimal | None:
    """``"1000000.00"``, ``19999.99``, and what people type: ``"12 500,50"``, ``"1.234,5"``, ``"1,234.50"``."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Unmappable(f"amount {value!r} is not a number")
    if isinstance(value, Decimal | int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    text = re.sub(r"[^\d.,+-]", "", _SPACES.sub("", str(value))).strip(".,")  # drop spaces, "руб.", "$"
    if not re.search(r"\d", text):
        raise Unmappable(f"amount {str(value)[:40]!r} is not a number")
    if "," in text and "." in text:
        decimal_sep = "," if text.rfind(",") > text.rfind(".") else "."
        text = text.replace("." if decimal_sep == "," else ",", "").replace(decimal_sep, ".")
    elif text.count(",") == 1:
        text = text.replace(",", ".")
    elif text.count(",") > 1:
        text = text.replace(",", "")
    elif text.count(".") > 1:
        text = text.replace(".", "")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise Unmappable(f"amount {str(value)[:40]!r} is not a number") from None
    if not amount.is_finite():
        raise Unmappable(f"amount {str(value)[:40]!r} is not a number")
    return amount


def parse_datetime(value: Any, tz: tzinfo = UTC) -> datetime | None:
    """An ISO-8601 value to aware UTC. Naive values and bare dates are in the portal's time zone."""
    parsed = _wire_datetime(value)
    if parsed is None:
        if value is None or value == "" or value is False:
            return None
        parsed = _any_datetime(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it: no such moment in UTC
        raise Unmappable(f"date {str(value)[:40]!r} is out of range") from None


def _any_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    text = str(value).strip()
    try:
        return datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        raise Unmappable(f"date {text[:40]!r} is not ISO 8601") from None


def _wire_datetime(value: Any) -> datetime | None:
    """The form the portal sends (``2024-03-01T10:15:00+03:00``), parsed without the general path's steps."""
    if type(value) is str and "T" in value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def multifield(values: Any, normalize: Any, *args: Any) -> list[str]:
    """``PHONE``/``EMAIL`` multi-fields (``[{ID, VALUE_TYPE, VALUE, TYPE_ID}]``) → distinct normalized values
    (``normalize(value, *args)``)."""
    if not isinstance(values, list):
        return []
    out: list[str] = []
    for item in values:
        value = normalize(item.get("VALUE") if type(item) is dict or isinstance(item, Mapping) else item, *args)
        if value and value not in out:
            out.append(value)
    return out


def _id(value: Any) -> str | None:
    """An entity reference; Bitrix24 says "no link" with 0, "0", "" or null."""
    if type(value) is not str:
        if value is None or value is False:
            return None
        value = str(value)
    text = value.strip()
    return None if text in ("", "0") else text


def _text(value: Any) -> str | None:
    """A scalar as stripped text; a list or object where text belongs is not text (None), not its repr."""
    if type(value) is str:
        return value.strip() or None
    if value is None or isinstance(value, Mapping | list | tuple):
        return None
    return str(value).strip() or None


def _custom(row: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    return {name: row.get(crm_field) for name, crm_field in fields.items() if row.get(crm_field) not in (None, "")}


# -- records ----------------------------------------------------------------------------------


def map_user(row: Mapping[str, Any]) -> User | Rejected:
    remote_id = _id(row.get("ID"))
    if remote_id is None:
        return Rejected("users", None, "user without ID", dict(row))
    name = " ".join(p for p in (_text(row.get("NAME")), _text(row.get("LAST_NAME"))) if p) or None
    active = row.get("ACTIVE")
    return User(remote_id, name, active not in (False, "N", "false", 0, "0"), dict(row))


def stage_semantic(row: Mapping[str, Any]) -> StageSemantic:
    """``crm.status.list`` semantics: short ``SEMANTICS`` (null|S|F), or ``EXTRA.SEMANTICS``."""
    short = row.get("SEMANTICS")
    if short in _SEMANTIC:
        return _SEMANTIC[short]
    extra = row.get("EXTRA")
    if isinstance(extra, Mapping) and extra.get("SEMANTICS") in _EXTRA_SEMANTIC:
        return _EXTRA_SEMANTIC[extra["SEMANTICS"]]
    return "open"


def map_stage(row: Mapping[str, Any], pipeline_id: str, pipeline_name: str | None) -> Stage | Rejected:
    stage_id = _text(row.get("STATUS_ID"))
    if stage_id is None:
        return Rejected("stages", _text(row.get("ID")), "stage without STATUS_ID", dict(row))
    try:
        sort = int(row.get("SORT") or 0)
    except (TypeError, ValueError):
        sort = 0
    return Stage(pipeline_id, stage_id, stage_semantic(row), _text(row.get("NAME")), pipeline_name, sort, dict(row))


def map_currencies(rows: Iterable[Mapping[str, Any]], base: str | None) -> tuple[list[Currency], list[Rejected]]:
    """``AMOUNT`` units of the portal's base currency buy ``AMOUNT_CNT`` units; rebased on ``base``
    when the source names another base currency."""
    rates: dict[str, Decimal] = {}
    raws: dict[str, Any] = {}
    rejected: list[Rejected] = []
    portal_base = None
    for row in rows:
        code = _text(row.get("CURRENCY"))
        try:
            amount = parse_money(row.get("AMOUNT"))
            count = parse_money(row.get("AMOUNT_CNT")) or Decimal(1)
            if code is None or amount is None or amount <= 0 or count <= 0:
                raise Unmappable("currency without code or positive AMOUNT/AMOUNT_CNT")
        except Unmappable as exc:
            rejected.append(Rejected("currencies", code, str(exc), dict(row)))
            continue
        rates[code] = amount / count
        raws[code] = dict(row)
        if row.get("BASE") in ("Y", True):
            portal_base = code
    target = base or portal_base
    divisor = rates.get(target, Decimal(1)) if target else Decimal(1)
    if target and target not in rates:
        rejected.append(Rejected("currencies", target, f"base currency {target} is not defined on the portal"))
    out = [Currency(code, rate / divisor, code == target, raws[code]) for code, rate in rates.items()]
    return out, rejected


def _customer(
    kind: CustomerKind,
    entity: Literal["contacts", "companies"],
    row: Mapping[str, Any],
    ctx: MappingContext,
    name: str | None,
    attrs: dict[str, Any],
) -> Customer | Rejected:
    remote_id = _id(row.get("ID"))
    if remote_id is None:
        return Rejected(entity, None, "record without ID", dict(row))
    try:
        created = parse_datetime(row.get("DATE_CREATE"), ctx.portal_tz)
        updated = parse_datetime(row.get("DATE_MODIFY"), ctx.portal_tz)
    except Unmappable as exc:
        return Rejected(entity, remote_id, str(exc), dict(row))
    for field_name, attr in _UTM_ATTRS:
        if _text(row.get(field_name)):
            attrs[attr] = row[field_name]
    attrs["city"] = _text(row.get("ADDRESS_CITY"))
    if ctx.fields:
        attrs.update(_custom(row, ctx.fields))
    return Customer(
        kind=kind,
        remote_id=remote_id,
        name=name,
        responsible_id=_id(row.get("ASSIGNED_BY_ID")),
        company_id=_id(row.get("COMPANY_ID")) if kind == "contact" else None,
        created_at=created,
        updated_at=updated,
        phones=multifield(row.get("PHONE"), normalize_phone, ctx.phone_region),
        emails=multifield(row.get("EMAIL"), normalize_email),
        attrs={k: v for k, v in attrs.items() if v is not None and v != ""},
        raw=row if type(row) is dict else dict(row),
    )


def map_contact(row: Mapping[str, Any], ctx: MappingContext) -> Customer | Rejected:
    name = " ".join(p for p in (_text(row.get(k)) for k in ("NAME", "SECOND_NAME", "LAST_NAME")) if p) or None
    attrs = {"type": _text(row.get("TYPE_ID")), "source": _text(row.get("SOURCE_ID"))}
    return _customer("contact", "contacts", row, ctx, name, attrs)


def map_company(row: Mapping[str, Any], ctx: MappingContext) -> Customer | Rejected:
    attrs: dict[str, Any] = {
        "type": _text(row.get("COMPANY_TYPE")),
        "industry": _text(row.get("INDUSTRY")),
        "employees": _text(row.get("EMPLOYEES")),
    }
    if row.get("IS_MY_COMPANY") == "Y":
        attrs["is_my_company"] = True
    return _customer("company", "companies", row, ctx, _text(row.get("TITLE")), attrs)


def map_deal(item: Mapping[str, Any], ctx: MappingContext) -> Deal | Rejected:
    """A ``crm.item.list`` deal. Win/loss date: ``movedTime`` (the last stage change, i.e. the move to
    the final stage) as the docs advise, ``closedate`` when it is missing."""
    remote_id = _id(item.get("id"))
    if remote_id is None:
        return Rejected("deals", None, "deal without id", dict(item))
    pipeline = str(item.get("categoryId") if item.get("categoryId") not in (None, "") else 0)
    stage = _text(item.get("stageId"))
    semantic = _SEMANTIC.get(str(item.get("stageSemanticId") or "")) or ctx.semantics.get((pipeline, stage or ""))
    try:
        if semantic is None:
            raise Unmappable(f"stage {stage!r} of pipeline {pipeline} has no known semantic")
        if not isinstance(item.get("contactIds"), list | None):
            raise Unmappable("contactIds is not a list")
        amount = parse_money(item.get("opportunity"))
        created = parse_datetime(item.get("createdTime"), ctx.portal_tz)
        updated = parse_datetime(item.get("updatedTime"), ctx.portal_tz)
        closed = None
        if semantic != "open":
            closed = parse_datetime(item.get("movedTime"), ctx.portal_tz) or parse_datetime(
                item.get("closedate"), ctx.portal_tz
            )
    except Unmappable as exc:
        return Rejected("deals", remote_id, str(exc), dict(item))
    currency = _text(item.get("currencyId")) or ctx.base_currency
    rate = ctx.rates.get(currency) if currency else None
    contacts = deal_contacts(item)
    attrs = {"source": _text(item.get("sourceId")), "type": _text(item.get("typeId"))}
    attrs.update(
        {
            f"utm_{k[3:].lower()}": item[k]
            for k in ("utmSource", "utmMedium", "utmCampaign", "utmContent", "utmTerm")
            if _text(item.get(k))
        }
    )
    return Deal(
        remote_id=remote_id,
        status=semantic,
        pipeline_id=pipeline,
        stage_id=stage,
        title=_text(item.get("title")),
        company_id=_id(item.get("companyId")),
        contact_ids=contacts,
        amount=amount,
        currency=currency,
        amount_base=(amount * rate) if amount is not None and rate is not None else None,
        responsible_id=_id(item.get("assignedById")),
        created_at=created,
        closed_at=closed,
        updated_at=updated,
        attrs={k: v for k, v in attrs.items() if v is not None},
        raw=item if isinstance(item, dict) else dict(item),
    )


_TYPE_KIND = {"1": "meeting", "2": "call", "3": "task", "4": "email"}
_PROVIDER_KIND = {
    "CRM_TODO": "task",
    "CRM_MEETING": "meeting",
    "CRM_EMAIL": "email",
    "VOXIMPLANT_CALL": "call",
    "CRM_CALL_TRACKER": "call",
    "IMOPENLINES_SESSION": "message",
    "CRM_SMS": "message",
    "CRM_NOTIFICATION": "message",
    "CRM_TASKS_TASK": "task",
}


def map_activity(
    row: Mapping[str, Any], ctx: MappingContext, deal_customer: Mapping[str, tuple[CustomerKind, str]]
) -> Touch | Rejected | None:
    """A timeline activity as a touch of its contact/company. Deal-owned activities count for the
    deal's customer when ``deal_customer`` knows it; others (leads, quotes, ...) are not touches."""
    remote_id = _id(row.get("ID"))
    if remote_id is None:
        return Rejected("touches", None, "activity without ID", dict(row))
    owner_type, owner_id = str(row.get("OWNER_TYPE_ID") or ""), _id(row.get("OWNER_ID"))
    if owner_id is None:
        return None
    if owner_type == str(OWNER_CONTACT):
        customer: tuple[CustomerKind, str] | None = ("contact", owner_id)
    elif owner_type == str(OWNER_COMPANY):
        customer = ("company", owner_id)
    elif owner_type == str(OWNER_DEAL):
        customer = deal_customer.get(owner_id)
    else:
        customer = None
    if customer is None:
        return None
    kind = _PROVIDER_KIND.get(str(row.get("PROVIDER_ID") or "")) or _TYPE_KIND.get(str(row.get("TYPE_ID")), "other")
    try:
        at = next(
            (
                t
                for t in (
                    parse_datetime(row.get(k), ctx.portal_tz) for k in ("START_TIME", "END_TIME", "DEADLINE", "CREATED")
                )
                if t
            ),
            None,
        )
    except Unmappable as exc:
        return Rejected("touches", remote_id, str(exc), dict(row))
    if at is None:
        return Rejected("touches", remote_id, "activity without any date", dict(row))
    return Touch(remote_id, customer[0], customer[1], kind, at, row.get("COMPLETED") == "Y", dict(row))  # type: ignore[arg-type]


def deal_contacts(item: Mapping[str, Any]) -> list[str]:
    """All contacts of a deal item, the primary (``contactId``) first."""
    listed = item.get("contactIds")
    contacts = [c for c in (_id(v) for v in listed) if c] if isinstance(listed, list) else []
    primary = _id(item.get("contactId"))
    return [primary, *(c for c in contacts if c != primary)] if primary else contacts


def deal_owner(item: Mapping[str, Any], prefer: str) -> tuple[CustomerKind, str] | None:
    """Whose touch a deal activity is: the company or the primary contact, as the source analyses."""
    contacts = deal_contacts(item)
    contact, company = (contacts[0] if contacts else None), _id(item.get("companyId"))
    if prefer == "contact":
        return ("contact", contact) if contact else (("company", company) if company else None)
    return ("company", company) if company else (("contact", contact) if contact else None)
