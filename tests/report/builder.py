"""A small, realistic store for report tests: one Bitrix24-like source with Russian B2B and B2C customers,
two and a half years of won deals, segment state and history as the analytics step leaves them, a ledger of
tasks, runs, cursors and quarantine.

Segments here are computed by simple stand-in rules (the report only reads them); what matters is that the
shapes and keys are those of ``segment_state`` / ``segment_history`` / ``ledger``. Deterministic per seed.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert

from segsync.store import tables as t

AS_OF = datetime(2025, 6, 16, 6, 30, tzinfo=UTC)

_FIRST = [
    "Анна",
    "Иван",
    "Мария",
    "Сергей",
    "Ольга",
    "Дмитрий",
    "Елена",
    "Алексей",
    "Наталья",
    "Павел",
    "Юлия",
    "Артём",
]
_LAST = ["Иванов", "Смирнов", "Кузнецов", "Попов", "Соколов", "Лебедев", "Козлов", "Новиков", "Морозов", "Волков"]
_ORG = [
    "Альфа",
    "Вектор",
    "Северный ветер",
    "Техснаб",
    "Ромашка",
    "Гранит",
    "Меридиан",
    "Сибирь-Трейд",
    "Орион",
    "Ладога",
]
_ORG_KIND = ["ООО", "АО", "ИП", "ООО ТД"]
_MANAGERS = ["Екатерина Белова", "Михаил Орлов", "Светлана Зайцева", "Григорий Титов", "Алина Романова"]


@dataclass
class Built:
    source_id: int
    customers: int
    deals: int
    names: list[str] = field(default_factory=list)


def _person(rng: random.Random) -> str:
    first = rng.choice(_FIRST)
    last = rng.choice(_LAST)
    if first.endswith("а") or first.endswith("я"):
        last += "а"
    return f"{last} {first}"


def _org(rng: random.Random, i: int) -> str:
    return f"{rng.choice(_ORG_KIND)} «{rng.choice(_ORG)}{'' if i % 3 else ' ' + str(i)}»"


def _phone(rng: random.Random) -> str:
    return f"+7 9{rng.randint(10, 99)} {rng.randint(100, 999)}-{rng.randint(10, 99)}-{rng.randint(10, 99)}"


def _insert(conn: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    """executemany needs the same keys in every row: fill the missing ones with NULL."""
    columns = sorted({key for row in rows for key in row})
    uniform = [{c: row.get(c) for c in columns} for row in rows]
    for start in range(0, len(uniform), 2000):
        conn.execute(insert(table), uniform[start : start + 2000])


def build_store(engine: Engine, *, customers: int = 240, seed: int = 7, name: str = "shop") -> Built:
    rng = random.Random(seed)
    now = AS_OF
    with engine.begin() as conn:
        sid = conn.execute(
            insert(t.sources).values(name=name, kind="bitrix24", base_currency="RUB", created_at=now, updated_at=now)
        ).inserted_primary_key[0]
        conn.execute(
            insert(t.users),
            [
                {"source_id": sid, "remote_id": str(i + 1), "name": m, "active": True, "synced_at": now}
                for i, m in enumerate(_MANAGERS)
            ],
        )
        customer_rows, deal_rows, state_rows, history_rows = [], [], [], []
        people: list[dict[str, Any]] = []
        dup_phone = _phone(rng)
        for i in range(customers):
            company = i % 5 < 2
            kind = "company" if company else "contact"
            remote = str(1000 + i)
            person_name = _org(rng, i) if company else _person(rng)
            phones = [] if rng.random() < 0.08 else [_phone(rng)]
            emails = [] if rng.random() < 0.3 else [f"client{i}@example.ru"]
            if i % 37 == 0:
                phones = [dup_phone]  # a planted duplicate group
            if i % 53 == 1 and people:
                person_name = people[-1]["name"]
                kind = people[-1]["kind"]
            manager = str(rng.randint(1, len(_MANAGERS)))
            created = now - timedelta(days=rng.randint(30, 1000))
            customer_rows.append(
                {
                    "source_id": sid,
                    "kind": kind,
                    "remote_id": remote,
                    "name": person_name,
                    "responsible_id": manager,
                    "phones": phones,
                    "emails": emails,
                    "created_at": created,
                    "synced_at": now,
                }
            )
            people.append({"kind": kind, "remote": remote, "name": person_name, "manager": manager, "created": created})

        for p in people:
            purchases = _purchase_days(rng, p["created"], now)
            amounts = [round(rng.lognormvariate(10.3 if p["kind"] == "company" else 8.6, 0.7), 2) for _ in purchases]
            for n, (day, amount) in enumerate(zip(purchases, amounts, strict=True)):
                deal_rows.append(
                    {
                        "source_id": sid,
                        "remote_id": f"{p['remote']}-{n}",
                        "title": "Заказ",
                        "status": "won",
                        "company_id": p["remote"] if p["kind"] == "company" else None,
                        "contact_id": p["remote"] if p["kind"] == "contact" else None,
                        "amount": Decimal(str(amount)),
                        "currency": "RUB",
                        "amount_base": Decimal(str(amount)),
                        "responsible_id": p["manager"],
                        "created_at": day - timedelta(days=3),
                        "closed_at": day,
                        "synced_at": now,
                    }
                )
            p["purchases"] = list(zip(purchases, amounts, strict=True))
        deal_rows.append(  # an open deal and a lost one must not count
            {"source_id": sid, "remote_id": "open-1", "status": "open", "contact_id": people[0]["remote"],
             "amount": Decimal("999999"), "amount_base": Decimal("999999"), "synced_at": now}
        )  # fmt: skip
        _insert(conn, t.customers, customer_rows)
        _insert(conn, t.deals, deal_rows)

        labels_by_customer = _segments(rng, people, now)
        for p in people:
            labels, features = labels_by_customer[p["remote"]]
            state_rows.append(
                {
                    "source_id": sid,
                    "customer_kind": p["kind"],
                    "customer_id": p["remote"],
                    "labels": labels,
                    "features": features,
                    "run_id": 3,
                    "as_of": now,
                    "updated_at": now,
                }
            )
        _insert(conn, t.segment_state, state_rows)
        history_rows = _history(rng, sid, people, labels_by_customer, now)
        _insert(conn, t.segment_history, history_rows)
        conn.execute(
            insert(t.model_fits),
            [
                {"source_id": sid, "run_id": 3, "model": "bgnbd", "status": "fitted", "params": {"r": 0.24},
                 "log_likelihood": -1234.5, "as_of": now, "created_at": now},
                {"source_id": sid, "run_id": 3, "model": "gamma_gamma", "status": "fitted", "params": {"p": 6.2},
                 "log_likelihood": -987.0, "as_of": now, "created_at": now},
            ],
        )  # fmt: skip
        _insert(conn, t.ledger, _ledger(rng, sid, people, labels_by_customer, now))
        conn.execute(insert(t.runs), _runs(rng, sid, now))
        conn.execute(
            insert(t.cursors),
            [
                {"source_id": sid, "stream": s, "state": {"after": "x"}, "updated_at": now - timedelta(minutes=m)}
                for s, m in (("customers", 12), ("deals", 9), ("users", 300))
            ],
        )
        conn.execute(
            insert(t.quarantine),
            [
                {"source_id": sid, "entity": "deal", "remote_id": f"bad-{i}", "reason": "amount is not a number: 'abc'",
                 "raw": {}, "created_at": now - timedelta(hours=i)}
                for i in range(3)
            ]
            + [{"source_id": sid, "entity": "contact", "remote_id": "bad-c", "reason": "missing ID",
                "raw": {}, "created_at": now}],
        )  # fmt: skip
    return Built(source_id=sid, customers=len(people), deals=len(deal_rows), names=[p["name"] for p in people])


def _purchase_days(rng: random.Random, created: datetime, now: datetime) -> list[datetime]:
    """A BG/NBD-like buyer: Poisson purchases while alive, a chance to die after each."""
    if rng.random() < 0.12:
        return []  # a lead: never bought
    rate = rng.choice([1 / 20, 1 / 45, 1 / 90, 1 / 180])  # purchases per day
    p_die = rng.choice([0.05, 0.15, 0.35])
    day = created + timedelta(days=rng.randint(0, 30))
    out = []
    while day <= now:
        out.append(day.replace(hour=rng.randint(7, 16), minute=rng.randint(0, 59), second=0, microsecond=0))
        if rng.random() < p_die:
            break
        day += timedelta(days=max(1.0, rng.expovariate(rate)))
    return out


def _segments(rng: random.Random, people: list[dict[str, Any]], now: datetime) -> dict[str, tuple[dict, dict]]:
    year_ago = now - timedelta(days=365)
    stats = []
    for p in people:
        bought = p["purchases"]
        rev365 = sum(a for d, a in bought if d > year_ago)
        stats.append((p, rev365))
    ranked = sorted((s for s in stats if s[1] > 0), key=lambda s: -s[1])
    total = sum(r for _, r in ranked) or 1.0
    abc: dict[str, str] = {}
    running = 0.0
    for p, rev in ranked:
        abc[p["remote"]] = "A" if running < 0.8 * total else ("B" if running < 0.95 * total else "C")
        running += rev
    out = {}
    for p, rev365 in stats:
        bought = p["purchases"]
        labels: dict[str, str] = {}
        if not bought:
            labels["lifecycle"] = "lead"
            out[p["remote"]] = (labels, {"name": p["name"], "responsible_id": p["manager"], "purchases": 0})
            continue
        first, last = bought[0][0], bought[-1][0]
        recency = (now - last).days
        months = {(d.year, d.month) for d, _ in bought if d > year_ago}
        cycle = max(14.0, (last - first).days / max(1, len(bought) - 1)) if len(bought) > 1 else 90.0
        labels["abc"] = abc.get(p["remote"], "N")
        if len(bought) == 1:
            xyz = "once"
        elif (now - first).days < 90:
            xyz = "new"
        elif not months:
            xyz = "none"
        else:
            xyz = "X" if len(months) >= 8 else ("Y" if len(months) >= 4 else "Z")
        labels["xyz"] = xyz
        labels["abc_xyz"] = f"{labels['abc']}{xyz}" if xyz in "XYZ" else f"{labels['abc']}-{xyz}"
        r = 5 if recency < 30 else 4 if recency < 90 else 3 if recency < 180 else 2 if recency < 365 else 1
        f = min(5, 1 + len(bought) // 3)
        rfm = _rfm(r, f)
        labels["rfm"] = rfm
        labels["rfm_score"] = f"{r}{f}3"
        if (now - first).days < 90:
            lifecycle = "new"
        elif recency > 3 * cycle:
            lifecycle = "lost"
        elif recency > 1.5 * cycle:
            lifecycle = "lapsed"
        else:
            lifecycle = "active"
        labels["lifecycle"] = lifecycle
        p_alive = math.exp(-recency / (2.5 * cycle)) if len(bought) > 1 else 1.0
        risk = "high" if p_alive < 0.5 else "medium" if p_alive < 0.75 else "low"
        labels["churn_risk"] = risk
        if recency > 1.5 * cycle:
            labels["churn_flag"] = "yes"
        if labels["abc"] == "A" and rev365 > 300_000:
            labels["vip"] = "yes"
        if p["kind"] == "company" and rev365 > 100_000:
            labels["custom:key_b2b"] = "yes"
        features = {
            "name": p["name"],
            "kind": p["kind"],
            "responsible_id": p["manager"],
            "purchases": len(bought),
            "revenue_total": round(sum(a for _, a in bought), 2),
            "revenue_365d": round(rev365, 2),
            "revenue_window": round(rev365, 2),
            "recency_days": recency,
            "days_since_touch": max(0, recency - rng.randint(0, 20)),
            "last_purchase": last.date().isoformat(),
            "cycle_days": cycle,
            "p_alive": round(p_alive, 4),
            "clv": round(rev365 * p_alive, 2),
        }
        out[p["remote"]] = (labels, features)
    return out


def _rfm(r: int, f: int) -> str:
    if r == 5 and f >= 4:
        return "champions"
    if r >= 3 and f >= 4:
        return "loyal_customers"
    if r >= 4 and f >= 2:
        return "potential_loyalists"
    if r == 5:
        return "new_customers"
    if r == 4:
        return "promising"
    if r == 3 and f == 3:
        return "need_attention"
    if r == 3:
        return "about_to_sleep"
    if f == 5:
        return "cant_lose"
    if f >= 3:
        return "at_risk"
    if r == 1 and f == 1:
        return "lost"
    return "hibernating"


_PREVIOUS = {
    "lifecycle": {"lapsed": "active", "lost": "lapsed", "active": "new", "returned": "lost"},
    "rfm": {"at_risk": "loyal_customers", "hibernating": "about_to_sleep", "about_to_sleep": "potential_loyalists",
            "champions": "loyal_customers", "lost": "hibernating"},
    "abc": {"B": "A", "C": "B", "A": "B"},
    "churn_risk": {"high": "medium", "medium": "low"},
}  # fmt: skip


def _history(rng: random.Random, sid: int, people, labels_by_customer, now: datetime) -> list[dict[str, Any]]:
    """Run 1 (two weeks ago) classified everyone; runs 2 (five days ago) and 3 (now) moved some customers."""
    rows = []
    runs = ((1, now - timedelta(days=14)), (2, now - timedelta(days=5)), (3, now))
    for p in people:
        labels = labels_by_customer[p["remote"]][0]
        for label in ("abc", "rfm", "lifecycle", "churn_risk", "xyz"):
            value = labels.get(label)
            if value is None:
                continue
            before = _PREVIOUS.get(label, {}).get(value)
            moved_in = None
            if before and rng.random() < 0.25:
                moved_in = rng.choice(runs[1:])
            first_value = before if moved_in else value
            rows.append(_hist(sid, p, label, None, first_value, runs[0]))
            if moved_in:
                rows.append(_hist(sid, p, label, before, value, moved_in))
    return rows


def _hist(sid, p, label, before, after, run) -> dict[str, Any]:
    return {
        "source_id": sid,
        "customer_kind": p["kind"],
        "customer_id": p["remote"],
        "label": label,
        "from_value": before,
        "to_value": after,
        "run_id": run[0],
        "as_of": run[1],
    }


def _ledger(rng: random.Random, sid: int, people, labels_by_customer, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for p in people:
        labels = labels_by_customer[p["remote"]][0]
        if labels.get("churn_flag") != "yes":
            continue
        state = rng.choices(["done", "planned", "pending", "failed", "parked"], [80, 10, 2, 5, 3])[0]
        created = now - timedelta(days=rng.randint(0, 20), hours=rng.randint(0, 10))
        key = f"task:shop:reactivation:{p['kind']}:{p['remote']}:{created:%Y%m%d}"
        rows.append(
            {
                "source_id": sid,
                "key": key,
                "op": "task",
                "customer_kind": p["kind"],
                "customer_id": p["remote"],
                "rule": "reactivation",
                "state": state,
                "payload": {"title": "Реактивация", "responsible_id": p["manager"], "due": "2025-06-18"},
                "reason": "action reactivation: churn_flag",
                "remote_id": str(rng.randint(1, 10**6)) if state == "done" else None,
                "attempts": 1,
                "created_at": created,
                "updated_at": created + timedelta(minutes=5),
            }
        )
        rows.append(  # label writes are ledger rows too, and must not count as tasks
            {
                "source_id": sid, "key": f"labels:{key}", "op": "labels", "customer_kind": p["kind"],
                "customer_id": p["remote"], "state": "done", "payload": {"after": labels}, "attempts": 1,
                "created_at": created, "updated_at": created,
            }
        )  # fmt: skip
    return rows


def _runs(rng: random.Random, sid: int, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for hours in range(0, 24 * 9, 6):
        started = now - timedelta(hours=hours, minutes=5)
        for step in ("pull", "compute", "plan", "push"):
            failed = step == "pull" and hours == 30
            rows.append(
                {
                    "source_id": sid,
                    "step": step,
                    "status": "failed" if failed else "ok",
                    "worker": "host:1",
                    "started_at": started,
                    "finished_at": started + timedelta(minutes=1),
                    "counts": {},
                    "error": "TransportError: timed out" if failed else None,
                }
            )
            started += timedelta(minutes=1)
    return rows


def dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
