"""Account, users, pipelines/statuses and the events log."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from segsync.sandbox.amocrm.account import AmoAccount
from segsync.sandbox.amocrm.auth import AccessGrant
from segsync.sandbox.amocrm.events import event_dict
from segsync.sandbox.amocrm.guard import base_of
from segsync.sandbox.amocrm.mapping import Pipeline, User
from segsync.sandbox.amocrm.params import (
    as_ints,
    as_list,
    page_href,
    parse_paging,
    parse_query,
    parse_range,
    parse_with,
)
from segsync.sandbox.amocrm.problems import HAL, invalid
from segsync.sandbox.amocrm.render import dumps, with_base
from segsync.sandbox.amocrm.routes_entities import no_content

EVENT_ENTITIES = ("lead", "contact", "company", "customer", "task")


def _send(body: Any, base: str) -> Response:
    return Response(with_base(dumps(body), base), media_type=HAL)


_CURRENCY_SYMBOLS = {"RUB": "₽", "USD": "$", "EUR": "€", "KZT": "₸", "BYN": "Br", "UAH": "₴"}


async def account_handler(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
    with_ = parse_with(parse_query(request.query_params.multi_items()))
    base = base_of(request)
    body: dict[str, Any] = {
        "id": acc.account_id,
        "name": acc.name,
        "subdomain": acc.subdomain,
        "created_at": acc.created_at,
        "created_by": acc.admin_user_id,
        "updated_at": acc.created_at,
        "updated_by": acc.admin_user_id,
        "current_user_id": grant.user_id if grant else acc.admin_user_id,
        "country": "RU",
        "currency": acc.currency,
        "currency_symbol": _CURRENCY_SYMBOLS.get(acc.currency),
        "mobile_feature_version": 0,
        "customers_mode": "disabled",
        "is_unsorted_on": True,
        "is_loss_reason_enabled": True,
        "is_helpbot_enabled": False,
        "is_technical_account": False,
        "contact_name_display_order": 1,
    }
    if "amojo_id" in with_:
        body["amojo_id"] = f"{acc.account_id:08x}-0000-4000-8000-000000000000"
    if "version" in with_:
        body["version"] = 16
    if "drive_url" in with_:
        body["drive_url"] = "https://drive-b.amocrm.ru"
    if "is_api_filter_enabled" in with_:
        body["is_api_filter_enabled"] = acc.options.is_api_filter_enabled
    body["_links"] = {"self": {"href": f"{base}/api/v4/account"}}
    embedded: dict[str, Any] = {}
    if "amojo_rights" in with_:
        embedded["amojo_rights"] = {"can_direct": True, "can_create_groups": True}
    if "users_groups" in with_:
        embedded["users_groups"] = [{"id": 0, "name": "Отдел продаж", "uuid": None}]
    if "task_types" in with_:
        embedded["task_types"] = [
            {"id": 1, "name": "Связаться", "color": None, "icon_id": None, "code": "FOLLOW_UP"},
            {"id": 2, "name": "Встреча", "color": None, "icon_id": None, "code": "MEETING"},
        ]
    if "datetime_settings" in with_:
        embedded["datetime_settings"] = {
            "date_pattern": "d.m.Y H:i",
            "short_date_pattern": "d.m.Y",
            "short_time_pattern": "H:i",
            "date_formant": "d.m.Y",
            "time_format": "H:i:s",
            "timezone": "Europe/Moscow",
            "timezone_offset": "+03:00",
        }
    if embedded:
        body["_embedded"] = embedded
    return _send(body, base)


def _rights(u: User) -> dict[str, Any]:
    full = {"add": "A", "view": "A", "edit": "A", "delete": "A", "export": "A"}
    return {
        "leads": full,
        "contacts": full,
        "companies": full,
        "tasks": {"edit": "A", "delete": "A"},
        "mail_access": True,
        "catalog_access": True,
        "status_rights": [],
        "is_admin": u.is_admin,
        "is_free": False,
        "is_active": u.is_active,
        "group_id": None,
        "role_id": None,
    }


def user_dict(u: User, base: str) -> dict[str, Any]:
    return {
        "id": u.id,
        "name": u.name,
        "email": u.email,
        "lang": "ru",
        "rights": _rights(u),
        "_links": {"self": {"href": f"{base}/api/v4/users/{u.id}"}},
    }


async def users_handler(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
    items = request.query_params.multi_items()
    paging = parse_paging(parse_query(items), default_limit=acc.options.default_limit, max_limit=acc.options.max_limit)
    users = sorted(acc.users, key=lambda u: u.id)
    chunk = users[(paging.page - 1) * paging.limit : paging.page * paging.limit]
    if not chunk:
        return no_content()
    base = base_of(request)
    links: dict[str, Any] = {"self": {"href": page_href(base, "/api/v4/users", items, paging.page, paging.limit)}}
    if paging.page * paging.limit < len(users):
        links["next"] = {"href": page_href(base, "/api/v4/users", items, paging.page + 1, paging.limit)}
    body = {
        "_total_items": len(users),
        "_page": paging.page,
        "_page_count": max(1, -(-len(users) // paging.limit)),
        "_links": links,
        "_embedded": {"users": [user_dict(u, base) for u in chunk]},
    }
    return _send(body, base)


async def user_handler(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
    u = next((u for u in acc.users if u.id == request.path_params["id"]), None)
    if u is None:
        return no_content()
    return _send(user_dict(u, base_of(request)), base_of(request))


def pipeline_dict(acc: AmoAccount, p: Pipeline, base: str) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "sort": p.sort,
        "is_main": p.is_main,
        "is_unsorted_on": True,
        "is_archive": False,
        "account_id": acc.account_id,
        "_links": {"self": {"href": f"{base}/api/v4/leads/pipelines/{p.id}"}},
        "_embedded": {"statuses": [status_dict(acc, p, s.id, base) for s in p.statuses]},
    }


def status_dict(acc: AmoAccount, p: Pipeline, status_id: int, base: str) -> dict[str, Any]:
    s = next(s for s in p.statuses if s.id == status_id)
    return {
        "id": s.id,
        "name": s.name,
        "sort": s.sort,
        "is_editable": s.is_editable,
        "pipeline_id": p.id,
        "color": s.color,
        "type": s.type,
        "account_id": acc.account_id,
        "_links": {"self": {"href": f"{base}/api/v4/leads/pipelines/{p.id}/statuses/{s.id}"}},
    }


async def pipelines_handler(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
    base = base_of(request)
    body = {
        "_total_items": len(acc.pipelines),
        "_links": {"self": {"href": f"{base}/api/v4/leads/pipelines"}},
        "_embedded": {"pipelines": [pipeline_dict(acc, p, base) for p in acc.pipelines]},
    }
    return _send(body, base)


async def pipeline_handler(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
    p = next((p for p in acc.pipelines if p.id == request.path_params["id"]), None)
    if p is None:
        return no_content()
    return _send(pipeline_dict(acc, p, base_of(request)), base_of(request))


async def statuses_handler(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
    p = next((p for p in acc.pipelines if p.id == request.path_params["id"]), None)
    if p is None:
        return no_content()
    base = base_of(request)
    body = {
        "_total_items": len(p.statuses),
        "_links": {"self": {"href": f"{base}/api/v4/leads/pipelines/{p.id}/statuses"}},
        "_embedded": {"statuses": [status_dict(acc, p, s.id, base) for s in p.statuses]},
    }
    return _send(body, base)


async def status_handler(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
    p = next((p for p in acc.pipelines if p.id == request.path_params["id"]), None)
    sid = request.path_params["status_id"]
    if p is None or all(s.id != sid for s in p.statuses):
        return no_content()
    return _send(status_dict(acc, p, sid, base_of(request)), base_of(request))


async def events_handler(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
    items = request.query_params.multi_items()
    q = parse_query(items)
    o = acc.options
    paging = parse_paging(q, default_limit=min(o.default_limit, o.events_max_limit), max_limit=o.events_max_limit)
    filt = q.get("filter") if isinstance(q.get("filter"), dict) else {}
    entities = set(as_list(filt["entity"])) if "entity" in filt else None
    for e in entities or ():
        if e not in EVENT_ENTITIES and not e.startswith("catalog_"):
            raise invalid("filter.entity", "The value you selected is not a valid choice.", code="NotSupportedChoice")
    entity_ids = None
    if "entity_id" in filt:
        entity_ids = set(as_ints(filt["entity_id"], "filter.entity_id"))
        if entities is None or len(entities) != 1:
            raise invalid("filter.entity_id", "filter[entity_id] requires exactly one filter[entity]", code="NotBlank")
        if len(entity_ids) > 10:
            raise invalid("filter.entity_id", "This collection should contain 10 elements or less.", code="TooMany")
    created_by = None
    if "created_by" in filt:
        created_by = set(as_ints(filt["created_by"], "filter.created_by"))
        if len(created_by) > 10:
            raise invalid("filter.created_by", "This collection should contain 10 elements or less.", code="TooMany")
    lo = hi = None
    if "created_at" in filt:
        rng = parse_range(filt["created_at"], "filter.created_at")
        lo, hi = rng.lo, rng.hi  # a bare timestamp means "events after it" (A-EVENTS)
    events = acc.events.select(
        ids=set(as_list(filt["id"])) if "id" in filt else None,
        types=set(as_list(filt["type"])) if "type" in filt else None,
        entities=entities,
        entity_ids=entity_ids,
        created_by=created_by,
        lo=lo,
        hi=hi,
        newest_first=o.events_order == "desc",
    )
    chunk = events[(paging.page - 1) * paging.limit : paging.page * paging.limit]
    if not chunk:
        return no_content()
    base = base_of(request)
    links: dict[str, Any] = {"self": {"href": page_href(base, "/api/v4/events", items, paging.page, paging.limit)}}
    if len(chunk) == paging.limit:
        links["next"] = {"href": page_href(base, "/api/v4/events", items, paging.page + 1, paging.limit)}
    body = {
        "_page": paging.page,
        "_links": links,
        "_embedded": {"events": [event_dict(e, acc.account_id) for e in chunk]},
    }
    return _send(body, base)


async def event_handler(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
    e = acc.events.by_id.get(request.path_params["id"])
    if e is None:
        return no_content()
    return _send(event_dict(e, acc.account_id), base_of(request))
