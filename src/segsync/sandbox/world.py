"""The CRM-neutral synthetic dataset both emulators serve.

A :class:`World` is columnar (polars) so that 10M deals generate and load in seconds. Each emulator
maps it to its own CRM's shapes (Bitrix24 string fields and ``C1:WON`` stage ids, amoCRM integer
statuses 142/143, ...). All datetimes are timezone-aware UTC.

Columns (``?`` = nullable):

managers     id:i64, name:str, email:str, active:bool, is_admin:bool
pipelines    id:i64 (0 = the main pipeline), name:str, sort:i64
stages       pipeline_id:i64, code:str ("NEW", "WON", "LOSE", ...), name:str, sort:i64, semantic:str (open|won|lost)
companies    id:i64, title:str, industry:str?, city:str?, source:str?, responsible_id:i64,
             phones:list[str], emails:list[str], created_at:datetime, updated_at:datetime
contacts     id:i64, name:str (may be empty: dirt), first_name:str?, last_name:str?, company_id:i64?,
             phones:list[str] (as typed by people: "+7 (912) 345-67-89", "89123456789", ...),
             emails:list[str] (mixed case), city:str?, source:str?, utm_source:str?, responsible_id:i64,
             created_at:datetime, updated_at:datetime, duplicate_of:i64? (truth for duplicate dirt),
             dirt:str? (duplicate | empty_name)
deals        id:i64, title:str, pipeline_id:i64, stage_code:str, status:str (open|won|lost),
             company_id:i64?, contact_ids:list[i64] (primary first; may be empty: dirt), amount:f64 (true
             value in `currency`), amount_text:str (as stored in the CRM; may be dirty: "12 500,50"),
             currency:str, source:str?, responsible_id:i64, created_at:datetime, closed_at:datetime?,
             updated_at:datetime, dirt:str? (no_customer | future_date | amount_text)
activities   id:i64, owner_kind:str (contact|company|deal), owner_id:i64, kind:str (call|meeting|email),
             subject:str, at:datetime, completed:bool, responsible_id:i64
currencies   code:str, rate:f64 (base-currency units per unit), is_base:bool
truth        customer_kind:str (contact|company), customer_id:i64, purchase_rate:f64? (per day),
             dropout_p:f64?, alive:bool?, first_purchase:datetime?, n_purchases:i64,
             last_purchase:datetime?, spend_log_mean:f64 (mean of log amount in the base currency)
             (rate, dropout and alive are null for leads: customers with n_purchases = 0)

``params`` holds the generator's true population parameters (BG/NBD r, alpha, a, b in days; spend
model), so analytics can be checked against ground truth.

Conventions (segsync.sandbox.data, additive to the format above): ``source`` and ``industry`` are
Bitrix24 status ids (``WEB``, ``CALL``, ``IT``, ...); stage codes are unprefixed per pipeline (the
Bitrix24 emulator serves ``C1:NEW`` for pipeline 1); IDs grow with ``created_at``. A customer is a
company (B2B) or a contact without a company (B2C); company employees are contacts with
``company_id``. ``truth.n_purchases`` counts won deals of the purchase process, i.e. won deals whose
``dirt`` is not ``no_customer``/``future_date``, attributed to ``company_id`` or else to the first
contact. ``dirt`` marks rows made dirty on purpose (null = clean).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl


@dataclass
class World:
    seed: int
    now: datetime
    base_currency: str
    managers: pl.DataFrame
    pipelines: pl.DataFrame
    stages: pl.DataFrame
    companies: pl.DataFrame
    contacts: pl.DataFrame
    deals: pl.DataFrame
    activities: pl.DataFrame
    currencies: pl.DataFrame
    truth: pl.DataFrame
    params: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, int]:
        return {
            "managers": self.managers.height,
            "companies": self.companies.height,
            "contacts": self.contacts.height,
            "deals": self.deals.height,
            "activities": self.activities.height,
        }
