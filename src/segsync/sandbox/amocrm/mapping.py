"""Map a CRM-neutral :class:`World` onto amoCRM shapes (pure; no I/O).

Ids: amo ids are large integers in per-type ranges (``AMO_ID_OFFSET``) so that a client mixing up
contact, company and lead ids fails visibly; ``world_id = amo_id - offset``. Statuses: every
pipeline gets an "incoming" status (type 1), the World's open stages, and the fixed system statuses
142 (won) and 143 (lost). Timestamps are Unix seconds. PHONE/EMAIL are system multitext fields with
``field_code`` and ``enum_code``; other World attributes become ordinary custom fields
(``field_code`` null) — except UTM source, which amo keeps as a ``tracking_data`` field.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from segsync.sandbox.amocrm.model import Kind, Record, cf_bytes
from segsync.sandbox.world import World

WON_STATUS_ID = 142
LOST_STATUS_ID = 143

AMO_ID_OFFSET: dict[str, int] = {
    "users": 9_000_000,
    "pipelines": 7_000_000,
    "contacts": 20_000_000,
    "companies": 30_000_000,
    "leads": 40_000_000,
    "tasks": 50_000_000,
}

PHONE_ENUMS = {"WORK": 1, "WORKDD": 2, "MOB": 3, "FAX": 4, "HOME": 5, "OTHER": 6}
EMAIL_ENUMS = {"WORK": 1, "PRIV": 2, "OTHER": 3}
_PRIVATE_MAIL = ("gmail.", "mail.ru", "yandex.", "ya.ru", "bk.ru", "inbox.ru", "list.ru", "rambler.")


def amo_id(kind: str, world_id: int) -> int:
    return AMO_ID_OFFSET[kind] + int(world_id)


def world_id(kind: str, amo: int) -> int:
    return int(amo) - AMO_ID_OFFSET[kind]


def ts(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


@dataclass
class FieldDef:
    id: int
    name: str
    code: str | None
    type: str  # multitext | text | select | tracking_data
    sort: int
    enums: dict[str, int] = field(default_factory=dict)  # value/enum_code → enum_id

    def enum_value(self, enum_id: int) -> str | None:
        for value, eid in self.enums.items():
            if eid == enum_id:
                return value
        return None

    def api(self, kind: str, account_id: int) -> dict[str, Any]:
        enums = None
        if self.enums:
            enums = [
                {"id": eid, "value": value, "sort": (i + 1) * 10} for i, (value, eid) in enumerate(self.enums.items())
            ]
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "account_id": account_id,
            "code": self.code,
            "sort": self.sort,
            "is_api_only": False,
            "enums": enums,
            "group_id": None,
            "required_statuses": [],
            "is_deletable": self.code is None,
            "is_predefined": self.code is not None,
            "entity_type": kind,
            "_links": {"self": {"href": f"@@AMO_BASE@@/api/v4/{kind}/custom_fields/{self.id}"}},
        }


@dataclass
class Status:
    id: int
    name: str
    sort: int
    type: int  # 1 = incoming (unsorted), 0 = regular
    is_editable: bool
    color: str


@dataclass
class Pipeline:
    id: int
    name: str
    sort: int
    is_main: bool
    statuses: list[Status]


@dataclass
class User:
    id: int
    name: str
    email: str
    is_admin: bool
    is_active: bool


@dataclass
class Mapped:
    """Everything an account is built from; produced once from the World."""

    users: list[User]
    pipelines: list[Pipeline]
    fields: dict[str, dict[int, FieldDef]]
    leads: list[Record]
    contacts: list[Record]
    companies: list[Record]
    tasks: list[dict[str, Any]]
    admin_user_id: int


_COLORS = ("#99ccff", "#ffff99", "#ffcc66", "#ffcccc", "#d6eaff", "#ccff66", "#e6e8ea", "#98cbff")


def _field_defs(kind: Kind, base: int, world: World) -> dict[int, FieldDef]:
    defs = [
        FieldDef(base + 1, "Телефон", "PHONE", "multitext", 4, dict(PHONE_ENUMS)),
        FieldDef(base + 3, "Email", "EMAIL", "multitext", 6, dict(EMAIL_ENUMS)),
    ]
    if kind == "contacts":
        defs.append(FieldDef(base + 5, "Должность", "POSITION", "text", 2))
        defs.append(FieldDef(base + 7, "Город", None, "text", 500))
        defs.append(FieldDef(base + 9, "Источник", None, "select", 502, _enums(world.contacts, "source", base + 100)))
        defs.append(FieldDef(base + 11, "utm_source", "UTM_SOURCE", "tracking_data", 600))
    elif kind == "companies":
        defs.append(FieldDef(base + 5, "Web", "WEB", "url", 8))
        defs.append(FieldDef(base + 7, "Город", None, "text", 500))
        defs.append(FieldDef(base + 9, "Источник", None, "select", 502, _enums(world.companies, "source", base + 100)))
        defs.append(
            FieldDef(base + 13, "Отрасль", None, "select", 504, _enums(world.companies, "industry", base + 300))
        )
    else:
        defs = [
            FieldDef(base + 9, "Источник", None, "select", 502, _enums(world.deals, "source", base + 100)),
            FieldDef(base + 15, "Валюта", None, "select", 506, _currency_enums(world, base + 500)),
        ]
    return {d.id: d for d in defs}


def _enums(frame: pl.DataFrame, column: str, first_id: int) -> dict[str, int]:
    if column not in frame.columns or frame.height == 0:
        return {}
    values = sorted(v for v in frame.get_column(column).unique().to_list() if v)
    return {v: first_id + i for i, v in enumerate(values)}


def _currency_enums(world: World, first_id: int) -> dict[str, int]:
    codes = sorted(world.currencies.get_column("code").to_list()) if world.currencies.height else []
    return {c: first_id + i for i, c in enumerate(codes)}


def phone_enum(raw: str) -> str:
    digits = "".join(ch for ch in raw if ch.isdigit())
    if (len(digits) == 11 and digits[:2] in ("79", "89")) or (len(digits) == 10 and digits[0] == "9"):
        return "MOB"
    return "WORK"


def email_enum(raw: str) -> str:
    low = raw.lower()
    return "PRIV" if any(dom in low for dom in _PRIVATE_MAIL) else "WORK"


def multitext(fd: FieldDef, values: list[str], classify: Any) -> dict[str, Any] | None:
    vals = [v for v in values if v]
    if not vals:
        return None
    out = []
    for v in vals:
        code = classify(v)
        out.append({"value": v, "enum_id": fd.enums[code], "enum_code": code})
    return {"field_id": fd.id, "field_name": fd.name, "field_code": fd.code, "field_type": fd.type, "values": out}


def scalar(fd: FieldDef, value: Any) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    item: dict[str, Any] = {"value": value}
    if fd.type == "select":
        item["enum_id"] = fd.enums.get(value)
    return {"field_id": fd.id, "field_name": fd.name, "field_code": fd.code, "field_type": fd.type, "values": [item]}


def _cf(parts: list[dict[str, Any] | None]) -> bytes | None:
    return cf_bytes([p for p in parts if p is not None])


def _by_code(defs: dict[int, FieldDef]) -> dict[str, FieldDef]:
    return {d.code or d.name: d for d in defs.values()}


def _col(frame: pl.DataFrame, name: str, default: Any = None) -> list[Any]:
    if name in frame.columns:
        return frame.get_column(name).to_list()
    return [default] * frame.height


def map_world(world: World) -> Mapped:
    """Build amo-shaped users, pipelines, field definitions, records and tasks from a World."""
    users = [
        User(amo_id("users", r["id"]), r["name"], r["email"], bool(r["is_admin"]), bool(r["active"]))
        for r in world.managers.iter_rows(named=True)
    ]
    admins = [u.id for u in users if u.is_admin and u.is_active] or [u.id for u in users]
    admin_user_id = admins[0] if admins else amo_id("users", 1)

    pipelines: list[Pipeline] = []
    status_of: dict[tuple[int, str], int] = {}
    next_status = 60_000_000
    for p_i, p in enumerate(world.pipelines.sort("sort").iter_rows(named=True)):
        pid = amo_id("pipelines", p["id"])
        statuses = [Status(next_status, "Неразобранное", 10, 1, False, "#c1c1c1")]
        next_status += 1
        stages = world.stages.filter(pl.col("pipeline_id") == p["id"]).sort("sort")
        for s_i, s in enumerate(stages.iter_rows(named=True)):
            if s["semantic"] == "won":
                status_of[(p["id"], s["code"])] = WON_STATUS_ID
                continue
            if s["semantic"] == "lost":
                status_of[(p["id"], s["code"])] = LOST_STATUS_ID
                continue
            statuses.append(Status(next_status, s["name"], 20 + 10 * s_i, 0, True, _COLORS[s_i % len(_COLORS)]))
            status_of[(p["id"], s["code"])] = next_status
            next_status += 1
        statuses.append(Status(WON_STATUS_ID, "Успешно реализовано", 10000, 0, False, "#CCFF66"))
        statuses.append(Status(LOST_STATUS_ID, "Закрыто и не реализовано", 11000, 0, False, "#D5D8DB"))
        pipelines.append(Pipeline(pid, p["name"], (p_i + 1) * 10, p["id"] == 0 or p_i == 0, statuses))

    fields = {
        "contacts": _field_defs("contacts", 300_000, world),
        "companies": _field_defs("companies", 400_000, world),
        "leads": _field_defs("leads", 500_000, world),
    }
    return Mapped(
        users=users,
        pipelines=pipelines,
        fields=fields,
        leads=_leads(world, fields["leads"], status_of, pipelines),
        contacts=_contacts(world, fields["contacts"]),
        companies=_companies(world, fields["companies"]),
        tasks=_tasks(world),
        admin_user_id=admin_user_id,
    )


def _companies(world: World, defs: dict[int, FieldDef]) -> list[Record]:
    f = world.companies
    code = _by_code(defs)
    out = []
    cols = {c: _col(f, c) for c in ("id", "title", "phones", "emails", "city", "source", "industry")}
    cols |= {c: _col(f, c) for c in ("responsible_id", "created_at", "updated_at")}
    for i in range(f.height):
        resp = amo_id("users", cols["responsible_id"][i])
        out.append(
            Record(
                id=amo_id("companies", cols["id"][i]),
                name=cols["title"][i] or "",
                responsible_user_id=resp,
                created_by=resp,
                updated_by=resp,
                created_at=ts(cols["created_at"][i]),
                updated_at=ts(cols["updated_at"][i]),
                cf=_cf(
                    [
                        multitext(code["PHONE"], cols["phones"][i] or [], phone_enum),
                        multitext(code["EMAIL"], cols["emails"][i] or [], email_enum),
                        scalar(code["Город"], cols["city"][i]),
                        scalar(code["Источник"], cols["source"][i]),
                        scalar(code["Отрасль"], cols["industry"][i]),
                    ]
                ),
            )
        )
    return out


def _contacts(world: World, defs: dict[int, FieldDef]) -> list[Record]:
    f = world.contacts
    code = _by_code(defs)
    names = ("id", "name", "first_name", "last_name", "company_id", "phones", "emails", "city", "source")
    cols = {c: _col(f, c) for c in (*names, "utm_source", "responsible_id", "created_at", "updated_at")}
    out = []
    for i in range(f.height):
        resp = amo_id("users", cols["responsible_id"][i])
        company = cols["company_id"][i]
        out.append(
            Record(
                id=amo_id("contacts", cols["id"][i]),
                name=cols["name"][i] or "",
                first_name=cols["first_name"][i] or "",
                last_name=cols["last_name"][i] or "",
                company_id=None if company is None else amo_id("companies", company),
                responsible_user_id=resp,
                created_by=resp,
                updated_by=resp,
                created_at=ts(cols["created_at"][i]),
                updated_at=ts(cols["updated_at"][i]),
                cf=_cf(
                    [
                        multitext(code["PHONE"], cols["phones"][i] or [], phone_enum),
                        multitext(code["EMAIL"], cols["emails"][i] or [], email_enum),
                        scalar(code["Город"], cols["city"][i]),
                        scalar(code["Источник"], cols["source"][i]),
                        scalar(code["UTM_SOURCE"], cols["utm_source"][i]),
                    ]
                ),
            )
        )
    return out


def _leads(
    world: World, defs: dict[int, FieldDef], status_of: dict[tuple[int, str], int], pipelines: list[Pipeline]
) -> list[Record]:
    f = world.deals
    code = _by_code(defs)
    base = world.base_currency
    names = ("id", "title", "pipeline_id", "stage_code", "status", "company_id", "contact_ids", "amount", "currency")
    cols = {c: _col(f, c) for c in (*names, "source", "responsible_id", "created_at", "closed_at", "updated_at")}
    first_open = {p.id: next((s.id for s in p.statuses if s.type == 0), WON_STATUS_ID) for p in pipelines}
    out = []
    for i in range(f.height):
        resp = amo_id("users", cols["responsible_id"][i])
        wp = cols["pipeline_id"][i]
        pid = amo_id("pipelines", wp)
        status = cols["status"][i]
        if status == "won":
            sid = WON_STATUS_ID
        elif status == "lost":
            sid = LOST_STATUS_ID
        else:
            sid = status_of.get((wp, cols["stage_code"][i]), first_open.get(pid, WON_STATUS_ID))
        company = cols["company_id"][i]
        currency = cols["currency"][i]
        amount = cols["amount"][i]
        out.append(
            Record(
                id=amo_id("leads", cols["id"][i]),
                name=cols["title"][i] or "",
                price=round(amount) if amount is not None else 0,
                responsible_user_id=resp,
                created_by=resp,
                updated_by=resp,
                status_id=sid,
                pipeline_id=pid,
                created_at=ts(cols["created_at"][i]),
                updated_at=ts(cols["updated_at"][i]),
                closed_at=ts(cols["closed_at"][i]) if sid in (WON_STATUS_ID, LOST_STATUS_ID) else None,
                company_id=None if company is None else amo_id("companies", company),
                contact_ids=tuple(amo_id("contacts", c) for c in (cols["contact_ids"][i] or [])),
                cf=_cf(
                    [
                        scalar(code["Источник"], cols["source"][i]),
                        scalar(code["Валюта"], currency) if currency and currency != base else None,
                    ]
                ),
            )
        )
    return out


_TASK_ENTITY = {"contact": "contacts", "company": "companies", "deal": "leads"}
_TASK_TYPE = {"call": 1, "meeting": 2, "email": 1}


def _tasks(world: World) -> list[dict[str, Any]]:
    """World activities (calls, meetings, e-mails) become amo tasks: the last touches a client can see."""
    f = world.activities
    out = []
    for r in f.iter_rows(named=True):
        kind = _TASK_ENTITY.get(r["owner_kind"], "contacts")
        at = ts(r["at"]) or 0
        resp = amo_id("users", r["responsible_id"])
        done = bool(r["completed"])
        out.append(
            {
                "id": amo_id("tasks", r["id"]),
                "created_by": resp,
                "updated_by": resp,
                "created_at": at - 86_400,
                "updated_at": at if done else at - 86_400,
                "responsible_user_id": resp,
                "group_id": 0,
                "entity_id": amo_id(kind, r["owner_id"]),
                "entity_type": kind,
                "duration": 0,
                "is_completed": done,
                "task_type_id": _TASK_TYPE.get(r["kind"], 1),
                "text": r["subject"] or "",
                "result": {"text": "Выполнено"} if done else [],
                "complete_till": at,
            }
        )
    return out


def account_id_for(name: str) -> int:
    """A stable, realistic-looking account id derived from the account name."""
    return 28_000_000 + zlib.crc32(name.encode()) % 1_000_000
