"""Helpers for tests and benchmarks of the amoCRM emulator: a hand-built World and a uvicorn thread.

``small_world`` stands in for ``segsync.sandbox.data.generate_world`` (being written elsewhere) and
produces the documented World columns deterministically from a seed, at any size.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import uvicorn

from segsync.sandbox.world import World

_FIRST = ["Иван", "Анна", "Пётр", "Мария", "Олег", "Елена", "Сергей", "Ольга"]
_LAST = ["Иванов", "Смирнова", "Кузнецов", "Попова", "Соколов", "Лебедева", "Новиков", "Морозова"]
_DT = pl.Datetime("us", "UTC")


def small_world(
    *,
    seed: int = 1,
    companies: int = 3,
    contacts: int = 8,
    deals: int = 12,
    activities: int = 4,
    now: datetime | None = None,
) -> World:
    """A deterministic World with every column the format documents (sizes are free)."""
    rng = random.Random(seed)
    now = now or datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def when(days_back: float) -> datetime:
        return now - timedelta(seconds=int(days_back * 86_400))

    managers = pl.DataFrame(
        {
            "id": [1, 2, 3],
            "name": ["Админ Админов", "Мария Менеджер", "Олег Продажин"],
            "email": ["admin@example.ru", "maria@example.ru", "oleg@example.ru"],
            "active": [True, True, False],
            "is_admin": [True, False, False],
        }
    )
    pipelines = pl.DataFrame({"id": [0, 1], "name": ["Воронка", "Опт"], "sort": [1, 2]})
    stages = pl.DataFrame(
        {
            "pipeline_id": [0, 0, 0, 0, 1, 1, 1],
            "code": ["NEW", "OFFER", "WON", "LOSE", "NEW", "WON", "LOSE"],
            "name": ["Первичный контакт", "Переговоры", "Успешно", "Провал", "Новая", "Успешно", "Провал"],
            "sort": [10, 20, 30, 40, 10, 20, 30],
            "semantic": ["open", "open", "won", "lost", "open", "won", "lost"],
        }
    )
    comp_rows: dict[str, list[Any]] = {k: [] for k in ("id", "title", "industry", "city", "source", "responsible_id")}
    comp_rows |= {"phones": [], "emails": [], "created_at": [], "updated_at": []}
    for i in range(1, companies + 1):
        created = when(rng.uniform(200, 900))
        comp_rows["id"].append(i)
        comp_rows["title"].append(f"ООО Ромашка {i}")
        comp_rows["industry"].append(rng.choice(["Розница", "Опт", None]))
        comp_rows["city"].append(rng.choice(["Москва", "Казань", None]))
        comp_rows["source"].append(rng.choice(["Сайт", "Звонок"]))
        comp_rows["responsible_id"].append(rng.choice([1, 2, 3]))
        comp_rows["phones"].append([f"+7 (495) {rng.randint(100, 999)}-{rng.randint(10, 99)}-{rng.randint(10, 99)}"])
        comp_rows["emails"].append([f"info{i}@romashka.ru"])
        comp_rows["created_at"].append(created)
        comp_rows["updated_at"].append(created + timedelta(days=rng.uniform(0, 100)))
    cont_rows: dict[str, list[Any]] = {
        k: [] for k in ("id", "name", "first_name", "last_name", "company_id", "phones", "emails", "city", "source")
    }
    cont_rows |= {k: [] for k in ("utm_source", "responsible_id", "created_at", "updated_at", "duplicate_of")}
    for i in range(1, contacts + 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        created = when(rng.uniform(100, 900))
        cont_rows["id"].append(i)
        cont_rows["name"].append("" if i % 7 == 0 else f"{first} {last}")
        cont_rows["first_name"].append(None if i % 7 == 0 else first)
        cont_rows["last_name"].append(None if i % 7 == 0 else last)
        cont_rows["company_id"].append(rng.randint(1, companies) if companies and i % 2 == 0 else None)
        cont_rows["phones"].append([rng.choice(["89123456789", "+7 912 345-67-89", "8 (495) 111-22-33"])])
        cont_rows["emails"].append([] if i % 3 == 0 else [f"User{i}@Mail.ru"])
        cont_rows["city"].append(rng.choice(["Москва", None]))
        cont_rows["source"].append(rng.choice(["Сайт", "Реклама", None]))
        cont_rows["utm_source"].append(rng.choice(["yandex", None]))
        cont_rows["responsible_id"].append(rng.choice([1, 2, 3]))
        cont_rows["created_at"].append(created)
        cont_rows["updated_at"].append(created + timedelta(days=rng.uniform(0, 90)))
        cont_rows["duplicate_of"].append(None)
    deal_rows: dict[str, list[Any]] = {
        k: [] for k in ("id", "title", "pipeline_id", "stage_code", "status", "company_id", "contact_ids", "amount")
    }
    deal_rows |= {k: [] for k in ("amount_text", "currency", "source", "responsible_id", "created_at")}
    deal_rows |= {"closed_at": [], "updated_at": []}
    for i in range(1, deals + 1):
        status = rng.choice(["open", "won", "won", "lost"])
        pipeline = 0 if i % 4 else 1
        stage = {"open": "NEW", "won": "WON", "lost": "LOSE"}[status]
        created = when(rng.uniform(30, 700))
        closed = created + timedelta(days=rng.uniform(1, 20)) if status != "open" else None
        amount = round(rng.uniform(1_000, 90_000), 2)
        n_contacts = 0 if i % 11 == 0 or contacts == 0 else rng.randint(1, min(2, contacts))
        deal_rows["id"].append(i)
        deal_rows["title"].append(f"Сделка #{i}")
        deal_rows["pipeline_id"].append(pipeline)
        deal_rows["stage_code"].append(stage)
        deal_rows["status"].append(status)
        deal_rows["company_id"].append(rng.randint(1, companies) if companies and i % 3 == 0 else None)
        deal_rows["contact_ids"].append(rng.sample(range(1, contacts + 1), n_contacts) if n_contacts else [])
        deal_rows["amount"].append(amount)
        deal_rows["amount_text"].append(f"{amount:,.2f}".replace(",", " ").replace(".", ","))
        deal_rows["currency"].append("USD" if i % 9 == 0 else "RUB")
        deal_rows["source"].append(rng.choice(["Сайт", None]))
        deal_rows["responsible_id"].append(rng.choice([1, 2, 3]))
        deal_rows["created_at"].append(created)
        deal_rows["closed_at"].append(closed)
        deal_rows["updated_at"].append((closed or created) + timedelta(hours=rng.uniform(0, 48)))
    act_rows: dict[str, list[Any]] = {
        k: [] for k in ("id", "owner_kind", "owner_id", "kind", "subject", "at", "completed", "responsible_id")
    }
    for i in range(1, activities + 1):
        act_rows["id"].append(i)
        act_rows["owner_kind"].append("contact")
        act_rows["owner_id"].append(rng.randint(1, max(contacts, 1)))
        act_rows["kind"].append(rng.choice(["call", "meeting"]))
        act_rows["subject"].append(f"Звонок клиенту {i}")
        act_rows["at"].append(when(rng.uniform(1, 60)))
        act_rows["completed"].append(i % 2 == 0)
        act_rows["responsible_id"].append(rng.choice([1, 2]))

    def frame(rows: dict[str, list[Any]], schema: dict[str, Any]) -> pl.DataFrame:
        return pl.DataFrame(rows, schema=schema)

    ts_cols = {"created_at": _DT, "updated_at": _DT}
    return World(
        seed=seed,
        now=now,
        base_currency="RUB",
        managers=managers,
        pipelines=pipelines,
        stages=stages,
        companies=frame(
            comp_rows,
            {
                "id": pl.Int64,
                "title": pl.Utf8,
                "industry": pl.Utf8,
                "city": pl.Utf8,
                "source": pl.Utf8,
                "responsible_id": pl.Int64,
                "phones": pl.List(pl.Utf8),
                "emails": pl.List(pl.Utf8),
                **ts_cols,
            },
        ),
        contacts=frame(
            cont_rows,
            {
                "id": pl.Int64,
                "name": pl.Utf8,
                "first_name": pl.Utf8,
                "last_name": pl.Utf8,
                "company_id": pl.Int64,
                "phones": pl.List(pl.Utf8),
                "emails": pl.List(pl.Utf8),
                "city": pl.Utf8,
                "source": pl.Utf8,
                "utm_source": pl.Utf8,
                "responsible_id": pl.Int64,
                **ts_cols,
                "duplicate_of": pl.Int64,
            },
        ),
        deals=frame(
            deal_rows,
            {
                "id": pl.Int64,
                "title": pl.Utf8,
                "pipeline_id": pl.Int64,
                "stage_code": pl.Utf8,
                "status": pl.Utf8,
                "company_id": pl.Int64,
                "contact_ids": pl.List(pl.Int64),
                "amount": pl.Float64,
                "amount_text": pl.Utf8,
                "currency": pl.Utf8,
                "source": pl.Utf8,
                "responsible_id": pl.Int64,
                "created_at": _DT,
                "closed_at": _DT,
                "updated_at": _DT,
            },
        ),
        activities=frame(
            act_rows,
            {
                "id": pl.Int64,
                "owner_kind": pl.Utf8,
                "owner_id": pl.Int64,
                "kind": pl.Utf8,
                "subject": pl.Utf8,
                "at": _DT,
                "completed": pl.Boolean,
                "responsible_id": pl.Int64,
            },
        ),
        currencies=pl.DataFrame({"code": ["RUB", "USD"], "rate": [1.0, 90.0], "is_base": [True, False]}),
        truth=pl.DataFrame(),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_in_thread(app: Any, *, port: int | None = None) -> Iterator[str]:
    """Run an ASGI app under uvicorn on 127.0.0.1 in a daemon thread; yields ``http://127.0.0.1:PORT``."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class RunningAccount:
    """A served account as a client sees it: base URL, client_info, admin header, ready httpx clients."""

    def __init__(self, account: Any, base_url: str, root_url: str):
        self.account = account
        self.base_url = base_url
        self.root_url = root_url
        self.info = account.client_info(base_url)
        self.admin_headers = {"X-Sandbox-Admin": account.options.admin_token}

    def client(self, token: str | None = None, **kwargs: Any) -> Any:
        import httpx

        headers = {"Authorization": f"Bearer {token or self.info['access_token']}"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=10, **kwargs)

    def admin(self) -> Any:
        import httpx

        return httpx.Client(base_url=f"{self.base_url}/_admin", headers=self.admin_headers, timeout=10)


@contextmanager
def running_account(
    world: World | None = None, *, options: Any = None, name: str = "test", extra_routes: list[Any] | None = None
) -> Iterator[RunningAccount]:
    """Serve one account mounted at ``/amo/<name>`` (as the composed sandbox does) on 127.0.0.1."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from segsync.sandbox.amocrm import AmoAccount, AmoOptions, build_app

    account = AmoAccount(world or small_world(), name=name, options=options or AmoOptions(rate_limit_rps=1e9))
    root = Starlette(routes=[*(extra_routes or []), Mount(f"/amo/{name}", app=build_app(account))])
    with serve_in_thread(root) as url:
        yield RunningAccount(account, f"{url}/amo/{name}", url)
