"""Normalized records → store rows. The only place that knows both shapes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table

from segsync.contract import Currency, Customer, Deal, Entity, Stage, Touch, User
from segsync.store import tables as t
from segsync.store.upsert import holds_nul, strip_nul


def storable(row: dict[str, Any]) -> dict[str, Any]:
    """A row PostgreSQL accepts, for the inserts that do not go through :func:`~segsync.store.upsert`
    (which checks whole pages itself). A CRM may send U+0000 inside a string (valid JSON, a pasted name),
    but PostgreSQL refuses it in text and jsonb and would fail the whole page; it carries no meaning, so it
    is dropped — on SQLite too, so both stores hold the same."""
    return strip_nul(row) if holds_nul(row) else row


@dataclass(frozen=True)
class Target:
    table: Table
    keys: tuple[str, ...]
    to_row: Callable[[Any, int, datetime], dict[str, Any]]


def _user(r: User, sid: int, now: datetime) -> dict[str, Any]:
    return {"source_id": sid, "remote_id": r.remote_id, "name": r.name, "active": r.active, "raw": r.raw,
            "synced_at": now, "deleted_at": None}  # fmt: skip


def _stage(r: Stage, sid: int, now: datetime) -> dict[str, Any]:
    return {"source_id": sid, "pipeline_id": r.pipeline_id, "stage_id": r.stage_id, "semantic": r.semantic,
            "name": r.name, "pipeline_name": r.pipeline_name, "sort": r.sort, "raw": r.raw, "synced_at": now,
            "deleted_at": None}  # fmt: skip


def _currency(r: Currency, sid: int, now: datetime) -> dict[str, Any]:
    return {"source_id": sid, "code": r.code, "rate": float(r.rate), "is_base": r.is_base, "raw": r.raw,
            "synced_at": now, "deleted_at": None}  # fmt: skip


def _customer(r: Customer, sid: int, now: datetime) -> dict[str, Any]:
    return {"source_id": sid, "kind": r.kind, "remote_id": r.remote_id, "name": r.name,
            "responsible_id": r.responsible_id, "company_id": r.company_id, "phones": r.phones,
            "emails": r.emails, "attrs": r.attrs, "raw": r.raw, "created_at": r.created_at,
            "updated_at": r.updated_at, "deleted_at": None, "synced_at": now}  # fmt: skip


def _deal(r: Deal, sid: int, now: datetime) -> dict[str, Any]:
    return {"source_id": sid, "remote_id": r.remote_id, "title": r.title, "status": r.status,
            "pipeline_id": r.pipeline_id, "stage_id": r.stage_id, "company_id": r.company_id,
            "contact_id": r.contact_ids[0] if r.contact_ids else None, "contact_ids": r.contact_ids,
            "amount": r.amount, "currency": r.currency, "amount_base": r.amount_base,
            "responsible_id": r.responsible_id, "attrs": r.attrs, "raw": r.raw, "created_at": r.created_at,
            "closed_at": r.closed_at, "updated_at": r.updated_at, "deleted_at": None,
            "synced_at": now}  # fmt: skip


def _touch(r: Touch, sid: int, now: datetime) -> dict[str, Any]:
    return {"source_id": sid, "remote_id": r.remote_id, "customer_kind": r.customer_kind,
            "customer_id": r.customer_id, "kind": r.kind, "at": r.at, "completed": r.completed, "raw": r.raw,
            "synced_at": now, "deleted_at": None}  # fmt: skip


TARGETS: dict[type, Target] = {
    User: Target(t.users, ("source_id", "remote_id"), _user),
    Stage: Target(t.stages, ("source_id", "pipeline_id", "stage_id"), _stage),
    Currency: Target(t.currencies, ("source_id", "code"), _currency),
    Customer: Target(t.customers, ("source_id", "kind", "remote_id"), _customer),
    Deal: Target(t.deals, ("source_id", "remote_id"), _deal),
    Touch: Target(t.touches, ("source_id", "remote_id"), _touch),
}

#: For deletions and the ID sweep: entity → (table, extra match on that table).
ENTITY_TABLES: dict[Entity, tuple[Table, dict[str, Any]]] = {
    "contacts": (t.customers, {"kind": "contact"}),
    "companies": (t.customers, {"kind": "company"}),
    "deals": (t.deals, {}),
    "users": (t.users, {}),
    "touches": (t.touches, {}),
}
