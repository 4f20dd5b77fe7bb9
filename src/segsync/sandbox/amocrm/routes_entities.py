"""Leads, contacts and companies: lists, single GET, PATCH, tag dictionaries and custom-field definitions."""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from segsync.sandbox.amocrm.account import AmoAccount
from segsync.sandbox.amocrm.auth import AccessGrant
from segsync.sandbox.amocrm.guard import base_of, json_body
from segsync.sandbox.amocrm.model import NULL_TS, EntityTable, Kind, cf_list
from segsync.sandbox.amocrm.params import (
    ListQuery,
    Order,
    as_ints,
    as_list,
    page_href,
    parse_order,
    parse_paging,
    parse_query,
    parse_range,
    parse_with,
)
from segsync.sandbox.amocrm.problems import HAL, ApiError, ValidationErrors, invalid, json_response
from segsync.sandbox.amocrm.render import deleted_dict, dumps, entity_bytes, page_bytes, variant_key, with_base
from segsync.sandbox.amocrm.writes import apply_item, validate_item

ORDERS: dict[str, tuple[str, ...]] = {
    "leads": ("created_at", "updated_at", "id"),
    "contacts": ("updated_at", "id"),
    "companies": ("updated_at", "id"),
}
RANGES: dict[str, tuple[str, ...]] = {
    "leads": ("created_at", "updated_at", "closed_at", "price"),
    "contacts": ("created_at", "updated_at"),
    "companies": ("created_at", "updated_at"),
}
EQUALS = ("responsible_user_id", "created_by", "updated_by")
NO_CONTENT = Response(status_code=204)


def no_content() -> Response:
    return Response(status_code=204)


def build_list_query(acc: AmoAccount, kind: Kind, q: dict[str, Any], with_: set[str]) -> ListQuery:
    lq = ListQuery(only_deleted="only_deleted" in with_, order=parse_order(q, ORDERS[kind], Order("id", False)))
    filt = q.get("filter")
    if filt is not None and not acc.options.is_api_filter_enabled:
        acc.filters_ignored += 1
        if acc.options.filter_disabled_mode == "reject":
            raise invalid("filter", "API filtering is not enabled for this account", code="NotSupportedChoice")
        filt = None
    if isinstance(filt, dict):
        if "id" in filt:
            lq.ids = tuple(as_ints(filt["id"], "filter.id"))
        for name in RANGES[kind]:
            if name in filt:
                lq.ranges[name] = parse_range(filt[name], f"filter.{name}")
        for name in EQUALS + (("pipeline_id",) if kind == "leads" else ()):
            if name in filt:
                lq.equals[name] = tuple(as_ints(filt[name], f"filter.{name}"))
        if kind == "leads" and isinstance(filt.get("statuses"), (dict, list)):
            items = filt["statuses"].values() if isinstance(filt["statuses"], dict) else filt["statuses"]
            pairs = []
            for item in items:
                if isinstance(item, dict):
                    pairs.append(
                        (
                            int(as_ints(item.get("pipeline_id"), "filter.statuses")[0]),
                            int(as_ints(item.get("status_id"), "filter.statuses")[0]),
                        )
                    )
            lq.statuses = tuple(pairs)
    if isinstance(q.get("query"), str) and q["query"].strip():
        lq.text = q["query"].strip().lower()
    return lq


def select_positions(table: EntityTable, lq: ListQuery) -> np.ndarray:
    cols = table.cols
    mask = table.restorable.copy() if lq.only_deleted else ~table.deleted
    if lq.ids is not None:
        mask &= np.isin(cols["id"], np.array(lq.ids, dtype=np.int64))
    for name, rng in lq.ranges.items():
        arr = cols[name]
        if rng.scalar:  # ISS-358: a bare timestamp instead of from/to finds nothing
            mask[:] = False
            break
        mask &= arr != NULL_TS
        if rng.lo is not None:
            mask &= arr >= rng.lo
        if rng.hi is not None:
            mask &= arr <= rng.hi
    for name, values in lq.equals.items():
        mask &= np.isin(cols[name], np.array(values, dtype=np.int64))
    if lq.statuses is not None:
        any_of = np.zeros_like(mask)
        for pipeline, status in lq.statuses:
            any_of |= (cols["pipeline_id"] == pipeline) & (cols["status_id"] == status)
        mask &= any_of
    idx = np.nonzero(mask)[0]
    if lq.text is not None:
        idx = np.array([i for i in idx if _matches(table.rows[i], lq.text)], dtype=np.int64)
    key = cols[lq.order.field][idx]
    order = np.lexsort((cols["id"][idx], key))
    if lq.order.desc:
        order = order[::-1]
    return idx[order]


def _matches(r: Any, text: str) -> bool:
    if text in (r.name or "").lower():
        return True
    for f in cf_list(r) or ():
        for v in f["values"]:
            if text in str(v.get("value", "")).lower():
                return True
    return False


def list_handler(kind: Kind):
    async def handler(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
        items = request.query_params.multi_items()
        q = parse_query(items)
        paging = parse_paging(q, default_limit=acc.options.default_limit, max_limit=acc.options.max_limit)
        with_ = parse_with(q)
        lq = build_list_query(acc, kind, q, with_)
        table = acc.tables[kind]
        positions = table.cached_query(lq.key(), lambda: select_positions(table, lq))
        start = (paging.page - 1) * paging.limit
        chunk = positions[start : start + paging.limit]
        if len(chunk) == 0:
            return no_content()
        variant = variant_key(kind, with_)
        rows = table.rows
        if lq.only_deleted:
            body = [dumps(deleted_dict(acc, kind, rows[i])) for i in chunk]
        else:
            body = [entity_bytes(acc, kind, rows[i], variant) for i in chunk]
        base = base_of(request)
        path = f"/api/v4/{kind}"
        p, lim = paging.page, paging.limit
        raw = page_bytes(
            p,
            page_href(base, path, items, p, lim),
            page_href(base, path, items, p + 1, lim) if len(chunk) == lim else None,
            page_href(base, path, items, 1, lim),
            page_href(base, path, items, p - 1, lim) if p > 1 else None,
            kind,
            body,
        )
        return Response(with_base(raw, base), media_type=HAL)

    return handler


def get_handler(kind: Kind):
    async def handler(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
        r = acc.tables[kind].get(request.path_params["id"])
        if r is None:
            return no_content()
        with_ = parse_with(parse_query(request.query_params.multi_items()))
        raw = entity_bytes(acc, kind, r, variant_key(kind, with_))
        return Response(with_base(raw, base_of(request)), media_type=HAL)

    return handler


def patch_handler(kind: Kind, *, single: bool):
    async def handler(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
        body = await json_body(request)
        actor = grant.user_id if grant else acc.admin_user_id
        if single:
            if not isinstance(body, dict):
                raise invalid("", "This value should be of type object.")
            body = dict(body, id=request.path_params["id"])
            items = [body]
        else:
            if not isinstance(body, list):
                raise invalid("", "This value should be of type array.")
            items = body
        if not items:
            raise ApiError(400, "Request data can not be empty")
        if len(items) > acc.options.write_batch_limit:
            raise ApiError(422, f"Limit {acc.options.write_batch_limit} per page")
        errs = ValidationErrors()
        for i, item in enumerate(items):
            validate_item(acc, kind, item, _rid(item, i), errs, need_id=True)
        if errs:
            raise errs.error()
        out = []
        table = acc.tables[kind]
        for i, item in enumerate(items):
            r = table.get(item["id"])
            assert r is not None
            apply_item(acc, kind, r, item, actor)
            out.append(
                {
                    "id": r.id,
                    "updated_at": r.updated_at,
                    "request_id": _rid(item, i),
                    "_links": {"self": {"href": f"{base_of(request)}/api/v4/{kind}/{r.id}"}},
                }
            )
        if single:
            return json_response(out[0])
        return json_response(
            {"_links": {"self": {"href": f"{base_of(request)}/api/v4/{kind}"}}, "_embedded": {kind: out}}
        )

    return handler


def _rid(item: Any, i: int) -> str:
    if isinstance(item, dict) and item.get("request_id") is not None:
        return str(item["request_id"])
    return str(i)


def tags_list_handler(kind: Kind):
    async def handler(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
        items = request.query_params.multi_items()
        q = parse_query(items)
        paging = parse_paging(q, default_limit=acc.options.default_limit, max_limit=acc.options.max_limit)
        tags = acc.tags[kind]
        filt = q.get("filter") if isinstance(q.get("filter"), dict) else {}
        ids = set(as_ints(filt["id"], "filter.id")) if "id" in filt else None
        names = set(as_list(filt["name"])) if "name" in filt else None
        text = q.get("query") if isinstance(q.get("query"), str) else None
        rows = [
            (i, n)
            for i, n in sorted(tags.names.items())
            if (ids is None or i in ids) and (names is None or n in names) and (not text or text.lower() in n.lower())
        ]
        start = (paging.page - 1) * paging.limit
        chunk = rows[start : start + paging.limit]
        if not chunk:
            return no_content()
        base = base_of(request)
        path = f"/api/v4/{kind}/tags"
        body: dict[str, Any] = {
            "_page": paging.page,
            "_links": {"self": {"href": page_href(base, path, items, paging.page, paging.limit)}},
            "_embedded": {"tags": tags.render(tuple(i for i, _ in chunk), with_color=kind == "leads")},
        }
        if len(chunk) == paging.limit:
            body["_links"]["next"] = {"href": page_href(base, path, items, paging.page + 1, paging.limit)}
        return json_response(body)

    return handler


def tags_create_handler(kind: Kind):
    async def handler(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
        body = await json_body(request)
        if not isinstance(body, list) or not body:
            raise invalid("", "This value should be of type array.")
        if len(body) > acc.options.write_batch_limit:
            raise ApiError(422, f"Limit {acc.options.write_batch_limit} per page")
        errs = ValidationErrors()
        for i, item in enumerate(body):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
                errs.add(_rid(item, i), "NotBlank", "name", "This value should not be blank.")
        if errs:
            raise errs.error()
        out = []
        for i, item in enumerate(body):
            tag_id = acc.tags[kind].ensure(item["name"])
            out.append({"id": tag_id, "name": item["name"], "request_id": _rid(item, i)})
        return json_response({"_total_items": len(out), "_embedded": {"tags": out}})

    return handler


def custom_fields_handler(kind: Kind):
    async def handler(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
        q = parse_query(request.query_params.multi_items())
        paging = parse_paging(q, default_limit=acc.options.default_limit, max_limit=acc.options.max_limit)
        defs = sorted(acc.fields[kind].values(), key=lambda d: d.sort)
        chunk = defs[(paging.page - 1) * paging.limit : paging.page * paging.limit]
        if not chunk:
            return no_content()
        base = base_of(request)
        body = {
            "_total_items": len(defs),
            "_page": paging.page,
            "_page_count": max(1, -(-len(defs) // paging.limit)),
            "_links": {"self": {"href": f"{base}/api/v4/{kind}/custom_fields?limit={paging.limit}&page={paging.page}"}},
            "_embedded": {"custom_fields": [d.api(kind, acc.account_id) for d in chunk]},
        }
        return Response(with_base(dumps(body), base), media_type=HAL)

    return handler
