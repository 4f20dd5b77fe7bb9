"""The `writeback:` and `actions:` sections: what managers see in their CRM. Semantics in docs/rules.md."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from segsync.config.segments import ActionWhere
from segsync.config.sources import Strict
from segsync.config.types import Duration, PositiveInt, TimeOfDay

_LABEL = re.compile(
    r"^(abc|xyz|abc_xyz|rfm|rfm_score|lifecycle|readiness|vip|churn_flag|churn_risk|custom:[a-z0-9][a-z0-9_-]{0,39})$"
)


def _check_label(value: str) -> str:
    if not _LABEL.match(value):
        raise ValueError(
            "is not a segment label; use abc, xyz, abc_xyz, rfm, rfm_score, lifecycle, readiness, vip, "
            "churn_flag, churn_risk or custom:<name>"
        )
    return value


LabelKey = Annotated[str, AfterValidator(_check_label)]


def _check_task_template(value: str) -> str:
    from segsync.actions.render import TASK_NAMES, check_template

    check_template(value, TASK_NAMES)
    return value


def _check_label_template(value: str) -> str:
    from segsync.actions.render import LABEL_NAMES, check_template

    check_template(value, LABEL_NAMES)
    return value


TaskText = Annotated[str, AfterValidator(_check_task_template)]
LabelText = Annotated[str, AfterValidator(_check_label_template)]


class TagsConfig(Strict):
    """For CRMs that show labels as tags (amoCRM): only tags with this prefix belong to segsync."""

    prefix: str = Field(default="seg:", min_length=1, max_length=20, description="Only tags with this prefix are ours.")


class WritebackConfig(Strict):
    enabled: bool = True
    language: Literal["ru", "en"] | None = Field(default=None, description="Display language; default: `language`.")
    publish: list[LabelKey] = Field(
        default_factory=lambda: ["abc_xyz", "rfm", "vip", "churn_risk"],
        description="Labels written to the CRM (as tags in amoCRM, as user fields in Bitrix24).",
    )
    tags: TagsConfig = TagsConfig()
    templates: dict[LabelKey, LabelText] = Field(
        default_factory=dict,
        description="A label's display form as a Jinja2 template, e.g. rfm: 'RFM {{ title }}'. "
        "Names: label, code, title (the built-in display), language.",
    )

    @field_validator("publish")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        dupes = sorted({v for v in value if value.count(v) > 1})
        if dupes:
            raise ValueError(f"labels listed twice: {', '.join(dupes)}")
        return value


class Transition(Strict):
    segment: LabelKey = Field(description="Which label to watch, e.g. rfm or lifecycle.")
    from_: list[str] | None = Field(default=None, alias="from", description="Any of these before (empty: any).")
    to: list[str] = Field(min_length=1, description="Any of these after.")
    delay: Duration = Field(default=timedelta(0), description="Act this long after the transition.")
    within: Duration = Field(
        default=timedelta(days=14),
        description="Ignore transitions whose action time (transition + delay) is older than this, so a new rule "
        "does not act on years of history.",
    )


class Cadence(Strict):
    no_touch: Duration = Field(description="Act when the customer had no call/meeting/e-mail for this long.")


class TaskTemplate(Strict):
    title: TaskText = Field(description="Jinja2 template (sandboxed), e.g. 'Реактивация: {{ customer.name }}'.")
    description: TaskText | None = None
    next_step: TaskText | None = Field(default=None, description="Overrides the built-in suggested next step.")
    type: Literal["call", "meeting", "todo"] = "call"
    due: PositiveInt = Field(default=2, description="Due in this many business days (at the end of working hours).")
    assignee: Literal["responsible"] | str = Field(
        default="responsible", description="'responsible' (the customer's manager) or a CRM user id."
    )
    fallback_user: str | None = Field(default=None, description="CRM user id when the assignee is inactive.")
    priority: Literal["low", "normal", "high"] = "normal"

    @field_validator("assignee", "fallback_user", mode="before")
    @classmethod
    def _user_id(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ActionConfig(Strict):
    name: str = Field(pattern=r"^[a-z0-9_-]{1,40}$", description="Stable key; part of the idempotency key.")
    where: ActionWhere | None = Field(
        default=None, description="Condition over feature columns, fields: keys and custom segment names."
    )
    transition: Transition | None = None
    cadence: Cadence | None = None
    task: TaskTemplate
    cooldown: Duration = Field(
        default=timedelta(days=30), description="No new task of this action for a customer within this."
    )
    complete_on_purchase: bool = Field(default=False, description="Close segsync's open task when they buy again.")
    sources: list[str] | None = Field(default=None, description="Limit to these sources (all when empty).")
    enabled: bool = True

    @model_validator(mode="after")
    def _one_trigger(self) -> ActionConfig:
        if self.where is None and self.transition is None and self.cadence is None:
            raise ValueError("needs a trigger: where, transition or cadence")
        if self.transition is not None and self.cadence is not None:
            raise ValueError("use either transition or cadence, not both (where may go with either)")
        return self


def _iso_date(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO date (YYYY-MM-DD)") from None
    return value


IsoDate = Annotated[str, AfterValidator(_iso_date)]


class WorkingHours(Strict):
    start: TimeOfDay = "09:00"
    end: TimeOfDay = "18:00"
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"], min_length=1
    )
    holidays: list[IsoDate] = Field(default_factory=list, description="ISO dates that are not business days.")
    workdays: list[IsoDate] = Field(
        default_factory=list, description="ISO dates that are business days anyway (transferred working Saturdays)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> WorkingHours:
        if self.start >= self.end:
            raise ValueError(f"start ({self.start}) must be before end ({self.end})")
        return self


class ActionLimits(Strict):
    daily_cap_per_manager: PositiveInt = Field(default=20, description="At most this many new tasks per manager a day.")
    max_attempts: PositiveInt = Field(default=5, description="After this many failures an op is parked.")
    retry_backoff: Duration = Field(default=timedelta(minutes=5), description="First retry delay; doubles each time.")
