"""Read a deals export (customer id, date, amount, optional name/phone/e-mail) as a read-only source.

Every row is a won deal (a purchase). Customers are the distinct ids, with the first non-empty name,
phone and e-mail seen for them. A row that cannot be read (no customer id, a date that does not match
``date_format``, an amount that is not a number, a repeated deal id) is handed back as :class:`Rejected`
with the reason, and the rest of the file goes on. A date without time becomes 12:00 UTC of that day, which
stays the same calendar day in every time zone from UTC−11 to UTC+11.

The cursor is the file's SHA-256: an unchanged file pulls nothing, a changed one is re-read in full (the
store's upserts make that idempotent). Writing back is impossible and raises :class:`FatalCrmError`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import polars as pl

from connectors.csvfile.options import CsvSource
from segsync.contacts import normalize_phone
from segsync.contract import (
    ChangeHint,
    Customer,
    CustomerRef,
    Deal,
    Entity,
    LabelChange,
    Page,
    Rejected,
    RemoteTask,
    TaskRequest,
    WriteResult,
)
from segsync.errors import FatalCrmError

_FIELDS = ("customer_id", "date", "amount", "deal_id", "name", "phone", "email")


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_table(source: CsvSource) -> pl.DataFrame:
    """The file as text columns ``line`` + the configured fields (missing optional fields are null)."""
    path = Path(source.path)
    raw = path.read_bytes()
    text = raw.decode(source.encoding).replace("\r\n", "\n").replace("\r", "\n")
    wanted = {k: v for k, v in source.columns.model_dump().items() if v is not None}
    if source.delimiter == "whitespace":
        lines = pl.Series("text", text.split("\n"))
        frame = pl.DataFrame({"text": lines}).with_row_index("line", offset=1)
        frame = frame.filter(pl.col("text").str.strip_chars() != "")
        names: list[str] = []
        if source.header:
            names = frame["text"][0].split()
            frame = frame.slice(1)
        parts = pl.col("text").str.extract_all(r"\S+")
        selected = [
            parts.list.get(_index(spec, names, source), null_on_oob=True).alias(field) for field, spec in wanted.items()
        ]
        frame = frame.select("line", *selected)
    else:
        table = pl.read_csv(
            text.encode("utf-8"),
            separator=source.delimiter,
            has_header=source.header,
            infer_schema=False,
            truncate_ragged_lines=True,
        )
        names = table.columns if source.header else []
        frame = table.select(
            pl.int_range(1, table.height + 1).alias("line") + (1 if source.header else 0),
            *[pl.col(table.columns[_index(spec, names, source)]).alias(field) for field, spec in wanted.items()],
        )
    missing = [pl.lit(None, dtype=pl.String).alias(f) for f in _FIELDS if f not in frame.columns]
    return frame.with_columns(missing).select("line", *_FIELDS).with_columns(pl.col("line").cast(pl.Int64))


def _index(spec: str | int, names: list[str], source: CsvSource) -> int:
    if isinstance(spec, int):
        return spec - 1
    if spec not in names:
        raise FatalCrmError(
            f"column {spec!r} is not in the header of {source.path} (found: {', '.join(names)})", source=source.name
        )
    return names.index(spec)


def _amount(text: str | None, decimal_comma: bool) -> Decimal | None:
    if text is None:
        return None
    clean = text.strip().replace("\u00a0", "").replace(" ", "").replace("\u202f", "")
    if decimal_comma:
        clean = clean.replace(".", "").replace(",", ".")
    try:
        value = Decimal(clean)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


class CsvConnector:
    """Implements :class:`segsync.contract.Connector` for pulling; every write raises."""

    def __init__(self, source: CsvSource, ctx: Any = None):
        self.source = source
        self.ctx = ctx
        self._parsed: tuple[str, list[Customer], list[Deal], list[Rejected]] | None = None

    async def __aenter__(self) -> CsvConnector:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def entities(self) -> Sequence[Entity]:
        return ("companies" if self.source.customer_kind == "company" else "contacts", "deals")

    # -- reading -------------------------------------------------------------------------------------------

    def parse(self) -> tuple[str, list[Customer], list[Deal], list[Rejected]]:
        """(file digest, customers, deals, rejected rows) — read once per connector."""
        if self._parsed is None:
            path = Path(self.source.path)
            if not path.is_file():
                raise FatalCrmError(f"CSV file not found: {path}", source=self.source.name)
            self._parsed = (file_digest(path), *self._records(read_table(self.source)))
        return self._parsed

    def _records(self, table: pl.DataFrame) -> tuple[list[Customer], list[Deal], list[Rejected]]:
        src = self.source
        fmt = src.date_format
        has_time = any(code in fmt for code in ("%H", "%I", "%M", "%S"))
        parsed = table.with_columns(
            pl.col("customer_id").str.strip_chars(),
            pl.col("date")
            .str.strip_chars()
            .str.strptime(pl.Datetime if has_time else pl.Date, fmt, strict=False)
            .alias("when"),
        )
        customers: dict[str, Customer] = {}
        deals: list[Deal] = []
        rejected: list[Rejected] = []
        seen: set[str] = set()
        company = src.customer_kind == "company"
        for row in parsed.iter_rows(named=True):
            deal_id = (row["deal_id"] or "").strip() or f"L{row['line']}"
            raw = {k: row[k] for k in _FIELDS if row[k] is not None} | {"line": row["line"]}
            reason = None
            amount = _amount(row["amount"], src.decimal_comma)
            if not row["customer_id"]:
                reason = "no customer id"
            elif row["when"] is None:
                reason = f"date {row['date']!r} does not match {fmt}"
            elif amount is None:
                reason = f"amount {row['amount']!r} is not a number"
            elif deal_id in seen:
                reason = f"deal id {deal_id!r} repeats an earlier row"
            if reason:
                rejected.append(Rejected("deals", deal_id, f"line {row['line']}: {reason}", raw))
                continue
            seen.add(deal_id)
            when = row["when"]
            at = (
                when.replace(tzinfo=UTC) if isinstance(when, datetime) else datetime.combine(when, time(12), tzinfo=UTC)
            )
            cid = row["customer_id"]
            customer = customers.get(cid)
            if customer is None:
                customer = customers[cid] = Customer(
                    kind=src.customer_kind, remote_id=cid, created_at=at, updated_at=at
                )
            customer.name = customer.name or (row["name"] or "").strip() or None
            phone = normalize_phone(row["phone"])
            if phone and not customer.phones:
                customer.phones.append(phone)
            email = (row["email"] or "").strip().lower()
            if email and not customer.emails:
                customer.emails.append(email)
            customer.updated_at = max(customer.updated_at or at, at)
            deals.append(
                Deal(
                    remote_id=deal_id,
                    status="won",
                    company_id=cid if company else None,
                    contact_ids=[] if company else [cid],
                    amount=amount,
                    currency=src.currency or src.base_currency,
                    amount_base=amount,
                    created_at=at,
                    closed_at=at,
                    updated_at=at,
                    raw=raw,
                )
            )
        return list(customers.values()), deals, rejected

    async def pull(self, entity: Entity, cursor: dict[str, Any] | None, *, full: bool = False) -> AsyncIterator[Page]:
        if entity not in self.entities():
            return
        digest, customers, deals, rejected = await asyncio.to_thread(self.parse)
        if not full and cursor and cursor.get("sha256") == digest:
            return
        records: list[Any] = customers if entity in ("contacts", "companies") else deals
        bad = rejected if entity == "deals" else []
        size = self.source.page_size
        total = len(records)
        pages = max(1, -(-total // size))
        for i in range(pages):
            last = i == pages - 1
            yield Page(
                entity=entity,
                records=records[i * size : (i + 1) * size],
                rejected=bad if last else [],
                cursor={"sha256": digest} if last else None,
                total_hint=total,
            )

    async def list_ids(self, entity: Entity) -> AsyncIterator[list[str]]:
        if entity not in self.entities():
            return
        _digest, customers, deals, _rejected = await asyncio.to_thread(self.parse)
        records: list[Any] = customers if entity in ("contacts", "companies") else deals
        yield [r.remote_id for r in records]

    async def deletions(self, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
        return
        yield  # pragma: no cover - makes this an (empty) async generator

    # -- writing: impossible ----------------------------------------------------------------------------------

    def _read_only(self, what: str) -> FatalCrmError:
        return FatalCrmError(
            f"source {self.source.name!r} is a CSV file and cannot be written back ({what}); "
            "disable write-back and actions for it",
            source=self.source.name,
        )

    async def prepare_writeback(self, labels: Sequence[str]) -> None:
        raise self._read_only("labels")

    async def set_labels(self, changes: Sequence[LabelChange]) -> list[WriteResult]:
        raise self._read_only("labels")

    async def create_tasks(self, tasks: Sequence[TaskRequest]) -> list[WriteResult]:
        raise self._read_only("tasks")

    async def find_tasks(self, customers: Sequence[CustomerRef], marker: str) -> list[RemoteTask]:
        return []

    async def complete_tasks(self, keys_and_ids: Sequence[tuple[str, str]]) -> list[WriteResult]:
        raise self._read_only("tasks")

    def parse_webhook(self, path_secret: str | None, form: Mapping[str, Any]) -> list[ChangeHint]:
        raise self._read_only("webhooks")
