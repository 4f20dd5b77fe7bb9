"""What every source has in common, whatever its CRM; connectors subclass :class:`SourceBase`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from segsync.config.types import CronExpr, Duration

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("must be lower-case letters, digits, '-' or '_' (it appears in URLs and metrics)")
    return value


SourceName = Annotated[str, AfterValidator(_check_name)]


class Strict(BaseModel):
    """Every rules-file model rejects unknown keys: a typo must not silently do nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PurchasesConfig(Strict):
    """Which deals count as purchases."""

    pipelines: list[str] | None = Field(
        default=None, description="Pipeline / deal-category ids whose won deals are purchases; all when empty."
    )
    won_only: bool = Field(default=True, description="Only won deals are purchases (open/lost ones feed lifecycle).")


class SourceSchedule(Strict):
    pull: Duration = Field(default=timedelta(minutes=10), description="Incremental pull interval.")
    reconcile: CronExpr = Field(default="0 3 * * *", description="ID sweep for deletions (crontab, timezone-aware).")
    compute: CronExpr = Field(default="30 6 * * *", description="Daily compute → plan → push even without changes.")


class SourceBase(Strict):
    """Options shared by all CRM kinds."""

    name: SourceName = Field(description="Unique, stable name; used in URLs, metrics and the store.")
    kind: str
    enabled: bool = True
    customer: Literal["company_else_contact", "contact", "company"] = Field(
        default="company_else_contact",
        description="Who is the customer analysed: the deal's company when it has one, else its contact.",
    )
    purchases: PurchasesConfig = PurchasesConfig()
    base_currency: str | None = Field(
        default=None, description="Currency for revenue figures; defaults to the CRM account's base currency."
    )
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Extra customer attributes to segment by: feature name → CRM field name (e.g. UF_CRM_INDUSTRY).",
    )
    schedule: SourceSchedule = SourceSchedule()
    overlap: Duration = Field(
        default=timedelta(minutes=10), description="Incremental pulls re-read this much before the cursor."
    )
