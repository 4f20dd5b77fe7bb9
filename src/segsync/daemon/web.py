"""The daemon's HTTP side: health, readiness, metrics, the report (starlette) and CRM webhooks, served by uvicorn."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from segsync import __version__
from segsync.app import now_utc
from segsync.config import Rules
from segsync.daemon.webhooks import Receive, Scope, Send, WebhookReceiver
from segsync.daemon.worker import SourceWorker
from segsync.metrics import render

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class DaemonView(Protocol):
    """What the web app reads from the daemon."""

    engine: Engine
    rules: Rules

    def workers(self) -> Mapping[str, SourceWorker]: ...

    def is_running(self) -> bool: ...


def _store_reachable(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _age(when: datetime | None, now: datetime) -> float | None:
    return None if when is None else round((now - when).total_seconds(), 1)


def source_readiness(worker: SourceWorker, now: datetime) -> dict[str, Any]:
    """Per source: who works it, whether it is stopped, and how old its last successes are."""
    interval = worker.source.schedule.pull.total_seconds()
    pulled = worker.last_success.get("pull")
    age = _age(pulled, now)
    mine = worker.is_mine(worker.source_id)
    return {
        "worked_here": mine,
        "state": "stopped" if worker.stopped else ("failing" if worker.failing_since is not None else "ok"),
        "last_success_age_s": {step: _age(when, now) for step, when in sorted(worker.last_success.items())},
        # stale: no successful pull within three intervals (and a minute of slack for long pulls)
        "stale": mine and (age is None or age > 3 * interval + 60),
    }


def build_app(daemon: DaemonView, extra_routes: Sequence[BaseRoute] = ()) -> ASGIApp:
    """The ASGI app: webhooks on a bare fast path, everything else through starlette.

    ``extra_routes`` is where later features mount their pages.
    """

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(_request: Request) -> Response:
        try:
            await asyncio.wait_for(asyncio.to_thread(_store_reachable, daemon.engine), timeout=5)
            store = "ok"
        except Exception as exc:
            store = f"unreachable: {type(exc).__name__}"
        now = now_utc()
        sources = {name: source_readiness(w, now) for name, w in sorted(daemon.workers().items())}
        ready = store == "ok" and daemon.is_running()
        body = {"ready": ready, "store": store, "version": __version__, "sources": sources}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(_request: Request) -> Response:
        payload, content_type = render()
        return Response(payload, media_type=content_type)

    report_lock = asyncio.Lock()  # one report at a time: it is CPU work over the whole store

    async def report(request: Request) -> Response:
        from segsync.report import render_report

        sources = request.query_params.getlist("source") or None
        unknown = sorted(set(sources or ()) - {s.name for s in daemon.rules.sources})
        if unknown:
            return PlainTextResponse(f"unknown source: {', '.join(unknown)}\n", status_code=404)
        lang = request.query_params.get("lang")
        if lang not in (None, "ru", "en"):
            return PlainTextResponse("lang must be ru or en\n", status_code=400)
        async with report_lock:
            html = await asyncio.to_thread(render_report, daemon.engine, daemon.rules, sources=sources, lang=lang)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/report", report, methods=["GET"]),
        *extra_routes,
    ]
    site = Starlette(routes=routes)
    receiver = WebhookReceiver(daemon)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/webhooks/"):
            await receiver(scope, receive, send)
        else:
            await site(scope, receive, send)

    return app


#: Type of a factory of extra routes, given the daemon (for features that mount pages, e.g. the report).
RouteFactory = Callable[[DaemonView], Sequence[BaseRoute]]
