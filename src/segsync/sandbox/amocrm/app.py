"""The ASGI app of one account: `/api/v4/...`, `/oauth2/access_token` and `/_admin/...`, relative to its mount."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from segsync.sandbox.amocrm import routes_entities as ent
from segsync.sandbox.amocrm import routes_misc as misc
from segsync.sandbox.amocrm import routes_tasks as tsk
from segsync.sandbox.amocrm.account import AmoAccount
from segsync.sandbox.amocrm.admin import admin_routes
from segsync.sandbox.amocrm.auth import AccessGrant, token_request_body
from segsync.sandbox.amocrm.guard import base_of, guarded
from segsync.sandbox.amocrm.model import KINDS
from segsync.sandbox.amocrm.problems import ApiError, json_response


async def token_endpoint(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
    body = token_request_body(await request.body(), request.headers.get("content-type", ""))
    pair = acc.auth.exchange(body, acc.now(), urlsplit(base_of(request)).netloc)
    return json_response(pair, 200, "application/json")


async def not_found(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
    raise ApiError(404, f"Cannot {request.method} {request.url}")


def build_app(account: AmoAccount) -> Starlette:
    acc = account

    def api(path: str, handler: ent.Any, methods: list[str], *, auth: bool = True) -> Route:
        return Route(path, guarded(acc, path, handler, auth=auth), methods=methods)

    routes: list[Route] = [api("/oauth2/access_token", token_endpoint, ["POST"], auth=False)]
    routes += [
        api("/api/v4/account", misc.account_handler, ["GET"]),
        api("/api/v4/users", misc.users_handler, ["GET"]),
        api("/api/v4/users/{id:int}", misc.user_handler, ["GET"]),
        api("/api/v4/leads/pipelines", misc.pipelines_handler, ["GET"]),
        api("/api/v4/leads/pipelines/{id:int}", misc.pipeline_handler, ["GET"]),
        api("/api/v4/leads/pipelines/{id:int}/statuses", misc.statuses_handler, ["GET"]),
        api("/api/v4/leads/pipelines/{id:int}/statuses/{status_id:int}", misc.status_handler, ["GET"]),
        api("/api/v4/events", misc.events_handler, ["GET"]),
        api("/api/v4/events/{id}", misc.event_handler, ["GET"]),
        api("/api/v4/tasks", tsk.tasks_list, ["GET"]),
        api("/api/v4/tasks", tsk.tasks_post, ["POST"]),
        api("/api/v4/tasks", tsk.tasks_patch, ["PATCH"]),
        api("/api/v4/tasks/{id:int}", tsk.task_get, ["GET"]),
        api("/api/v4/tasks/{id:int}", tsk.task_patch, ["PATCH"]),
    ]
    for kind in KINDS:
        base = f"/api/v4/{kind}"
        routes += [
            api(f"{base}/tags", ent.tags_list_handler(kind), ["GET"]),
            api(f"{base}/tags", ent.tags_create_handler(kind), ["POST"]),
            api(f"{base}/custom_fields", ent.custom_fields_handler(kind), ["GET"]),
            api(f"{base}/notes", tsk.notes_list(kind, by_entity=False), ["GET"]),
            api(f"{base}/notes", tsk.notes_post(kind, by_entity=False), ["POST"]),
            api(f"{base}/{{id:int}}/notes", tsk.notes_list(kind, by_entity=True), ["GET"]),
            api(f"{base}/{{id:int}}/notes", tsk.notes_post(kind, by_entity=True), ["POST"]),
            api(base, ent.list_handler(kind), ["GET"]),
            api(base, ent.patch_handler(kind, single=False), ["PATCH"]),
            api(f"{base}/{{id:int}}", ent.get_handler(kind), ["GET"]),
            api(f"{base}/{{id:int}}", ent.patch_handler(kind, single=True), ["PATCH"]),
        ]
    routes += admin_routes(acc)
    routes.append(api("/api/{rest:path}", not_found, ["GET", "POST", "PATCH", "PUT", "DELETE"]))
    app = Starlette(routes=routes)
    app.state.amo = acc
    return app
