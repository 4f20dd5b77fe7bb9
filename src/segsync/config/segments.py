"""The `segments:` section: how customers are classified. Semantics and examples in docs/rules.md.

``where:`` conditions are checked here, at load time, against the columns the engine produces plus every
source's ``fields:`` keys (and, for actions, the custom segment names). :class:`~segsync.config.models.Rules`
publishes those extra names through :data:`WHERE_CONTEXT` while it validates, so a typo is reported at the
line of the condition with the offending token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from segsync.config.sources import Strict
from segsync.config.types import Duration, PositiveInt, Share, format_duration, parse_duration
from segsync.errors import ExpressionError


@dataclass(frozen=True)
class WhereContext:
    fields: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()


#: Set by ``Rules`` while it validates a whole file; unset (no extra names) when a section is validated alone.
WHERE_CONTEXT: ContextVar[WhereContext | None] = ContextVar("segsync_where_context", default=None)


@contextmanager
def where_context(fields: tuple[str, ...] = (), segments: tuple[str, ...] = ()) -> Iterator[None]:
    token = WHERE_CONTEXT.set(WhereContext(tuple(fields), tuple(segments)))
    try:
        yield
    finally:
        WHERE_CONTEXT.reset(token)


def _check_condition(text: str, info: ValidationInfo, *, with_segments: bool, default_name: str) -> str:
    from segsync.segments.columns import where_columns
    from segsync.segments.expr import parse

    ctx = WHERE_CONTEXT.get() or WhereContext()
    try:
        parse(text, where_columns(ctx.fields, ctx.segments if with_segments else ()))
    except ExpressionError as exc:
        name = (info.data or {}).get("name") or default_name
        raise ValueError(f"condition of {name!r}: {exc}") from None
    return text


def _check_segment_where(text: str, info: ValidationInfo) -> str:
    return _check_condition(text, info, with_segments=False, default_name="vip")


def _check_action_where(text: str, info: ValidationInfo) -> str:
    return _check_condition(text, info, with_segments=True, default_name="action")


#: A condition of a segment rule: over feature columns and ``fields:`` keys.
SegmentWhere = Annotated[str, AfterValidator(_check_segment_where)]
#: A condition of an action: like :data:`SegmentWhere`, plus custom segment names.
ActionWhere = Annotated[str, AfterValidator(_check_action_where)]


class AbcShares(Strict):
    A: Share = Field(default=0.80, description="Cumulative revenue share that closes class A.")
    B: Share = Field(default=0.95, description="Cumulative revenue share that closes class B; the rest is C.")

    @model_validator(mode="after")
    def _ordered(self) -> AbcShares:
        if self.A >= self.B:
            raise ValueError(f"A ({self.A}) must be below B ({self.B})")
        return self


def _window(value: Any) -> timedelta | str:
    if isinstance(value, str) and value.strip().lower() == "all":
        return "all"
    return parse_duration(value)


#: A rolling window (duration) or ``all`` for all time.
WindowOrAll = Annotated[
    timedelta | str,
    PlainValidator(_window),
    PlainSerializer(lambda v: v if isinstance(v, str) else format_duration(v), return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^(all|\d+(\.\d+)?\s*(s|sec|m|min|h|d|w))$", "examples": ["365d"]}),
]


class AbcConfig(Strict):
    enabled: bool = True
    window: WindowOrAll = Field(
        default=timedelta(days=365), description="Rolling revenue window, or 'all' for all-time revenue."
    )
    shares: AbcShares = AbcShares()


class XyzThresholds(Strict):
    X: float = Field(default=0.10, gt=0, description="Coefficient of variation at or below which a customer is X.")
    Y: float = Field(default=0.25, gt=0, description="CV at or below which a customer is Y; above is Z.")

    @model_validator(mode="after")
    def _ordered(self) -> XyzThresholds:
        if self.X >= self.Y:
            raise ValueError(f"X ({self.X}) must be below Y ({self.Y})")
        return self


class XyzActivity(Strict):
    X: Share = Field(default=0.75, description="Share of periods with a purchase at or above which a customer is X.")
    Y: Share = Field(default=0.25, description="Share at or above which a customer is Y; below is Z.")

    @model_validator(mode="after")
    def _ordered(self) -> XyzActivity:
        if self.X <= self.Y:
            raise ValueError(f"X ({self.X}) must be above Y ({self.Y})")
        return self


class XyzConfig(Strict):
    enabled: bool = True
    period: Literal["week", "month", "quarter"] = "month"
    periods: PositiveInt = Field(default=12, description="How many complete periods back the series reaches.")
    min_periods: PositiveInt = Field(default=3, description="Fewer periods since the first purchase → class 'new'.")
    cv: XyzThresholds = XyzThresholds()
    active: XyzActivity = XyzActivity()
    variant: Literal["revenue", "frequency", "auto"] = Field(
        default="auto",
        description="revenue: CV of per-period revenue; frequency: share of periods with a purchase (B2B); "
        "auto: frequency for companies, revenue for contacts.",
    )


_SCORES = re.compile(r"^\s*[1-5](\s*-\s*[1-5])?(\s*,\s*[1-5](\s*-\s*[1-5])?)*\s*$")


def parse_scores(spec: str | int) -> frozenset[int]:
    """``'4-5'``, ``'1,2'``, ``'1-2,5'`` or ``5`` → the set of scores."""
    text = str(spec)
    if not _SCORES.match(text):
        raise ValueError(f"scores must look like '4-5', '1,2' or '5' (got {text!r})")
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        low, high = int(lo), int(hi or lo)
        if low > high:
            raise ValueError(f"range {part.strip()!r} runs backwards")
        out.update(range(low, high + 1))
    return frozenset(out)


def _check_scores(value: str | int) -> str:
    parse_scores(value)
    return str(value)


Scores = Annotated[str | int, AfterValidator(_check_scores)]


class RfmSegmentRule(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="Stable segment key, e.g. champions.")
    title_ru: str | None = None
    title_en: str | None = None
    r: Scores = Field(description="Recency scores, e.g. '4-5' or '1,2'.")
    f: Scores = Field(description="Frequency scores, e.g. '4-5'.")
    m: Scores | None = Field(default=None, description="Optional monetary scores.")


class RfmConfig(Strict):
    enabled: bool = True
    window: Duration = Field(default=timedelta(days=365), description="Purchases older than this are not scored.")
    bins: Literal[3, 4, 5] = 5
    map: Literal["default"] | list[RfmSegmentRule] = Field(
        default="default",
        description="Segment map: 'default' is the common R×F 10-segment map; or rules, first match wins.",
    )
    split_lost: bool = Field(default=True, description="Default map: R=1 and F=1 is 'lost' instead of 'hibernating'.")

    @model_validator(mode="after")
    def _map_fits_bins(self) -> RfmConfig:
        if self.map == "default":
            if self.bins != 5:
                raise ValueError("the default map needs bins: 5; give your own map for 3 or 4 bins")
            return self
        names = [rule.name for rule in self.map]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"RFM segment names must be unique; repeated: {', '.join(dupes)}")
        for rule in self.map:
            for dim in ("r", "f", "m"):
                spec = getattr(rule, dim)
                if spec is not None and max(parse_scores(spec)) > self.bins:
                    raise ValueError(f"segment {rule.name!r}: {dim} scores go above bins ({self.bins})")
        return self


Readiness = Literal["cold", "warm", "hot"]


class LifecycleConfig(Strict):
    enabled: bool = True
    new_within: Duration = Field(default=timedelta(days=90), description="First purchase this recent → new.")
    lapsed_factor: float = Field(default=1.5, gt=0, description="Silent > factor × usual cycle → lapsed.")
    lost_factor: float = Field(default=3.0, gt=0, description="Silent > factor × usual cycle → lost.")
    default_cycle: Duration = Field(
        default=timedelta(days=90), description="Cycle used when neither the customer nor the base has one."
    )
    readiness: dict[str, dict[str, Readiness]] = Field(
        default_factory=dict,
        description="For leads: pipeline id → {stage id → cold|warm|hot}.",
    )
    readiness_unmapped: Literal["cold", "by_position"] = Field(
        default="by_position",
        description="Open stages not in `readiness`: cold, or by their position in the pipeline "
        "(first third cold, middle warm, last third hot).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> LifecycleConfig:
        if self.lapsed_factor >= self.lost_factor:
            raise ValueError(f"lapsed_factor ({self.lapsed_factor}) must be below lost_factor ({self.lost_factor})")
        return self


class ClvConfig(Strict):
    months: PositiveInt = Field(default=12, description="CLV horizon in 30-day months.")
    discount: float = Field(default=0.01, ge=0, lt=1, description="Monthly discount rate.")


class ChurnConfig(Strict):
    enabled: bool = True
    factor: float = Field(default=2.0, gt=0, description="Flag when silent longer than factor × usual cycle.")
    cycle: Literal["per_customer", "segment", "global"] = Field(
        default="per_customer",
        description="Where the usual cycle comes from first; falls back to the ABC segment's, then the global "
        "median gap, then lifecycle.default_cycle.",
    )
    min_gaps: PositiveInt = Field(default=2, description="A customer's own cycle needs at least this many gaps.")
    model: Literal["bgnbd", "mbgnbd", "none"] = "mbgnbd"
    at_risk_below: Share = Field(default=0.5, description="P(alive) below this → churn risk high.")
    medium_below: Share = Field(default=0.8, description="P(alive) below this → churn risk medium.")
    horizon: Duration = Field(default=timedelta(days=90), description="Horizon of expected purchases / P(no purchase).")
    min_repeaters: PositiveInt = Field(default=20, description="Fewer repeat buyers → model not fitted.")
    clv: ClvConfig = ClvConfig()

    @model_validator(mode="after")
    def _ordered(self) -> ChurnConfig:
        if self.at_risk_below > self.medium_below:
            raise ValueError(f"at_risk_below ({self.at_risk_below}) must not exceed medium_below ({self.medium_below})")
        return self


class CohortConfig(Strict):
    enabled: bool = True
    period: Literal["month"] = "month"
    months: PositiveInt = Field(default=24, description="How many cohorts the table shows.")


class QualityConfig(Strict):
    inactive_after: Duration = Field(
        default=timedelta(days=365), description="No purchase and no touch for this long → listed as inactive."
    )


class VipRule(Strict):
    where: SegmentWhere = Field(description="Condition over feature columns, e.g. \"abc = 'A' AND rfm_f >= 4\".")
    title_ru: str | None = None
    title_en: str | None = None


class RuleSegment(Strict):
    name: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,24}$",
        description="Segment key (lower-case letters, digits, '_'; at most 25); a column in actions' where.",
    )
    where: SegmentWhere = Field(
        description="Condition over feature columns, e.g. \"abc = 'A' AND revenue_365d >= 1000000\"."
    )
    title_ru: str | None = None
    title_en: str | None = None


class SegmentsConfig(Strict):
    abc: AbcConfig = AbcConfig()
    xyz: XyzConfig = XyzConfig()
    rfm: RfmConfig = RfmConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
    churn: ChurnConfig = ChurnConfig()
    cohorts: CohortConfig = CohortConfig()
    quality: QualityConfig = QualityConfig()
    vip: VipRule | None = Field(default=None, description="VIP: a rule segment with a reserved name.")
    custom: list[RuleSegment] = Field(default_factory=list, description="The admin's own rule segments.")

    @model_validator(mode="after")
    def _unique_names(self) -> SegmentsConfig:
        from segsync.segments.columns import FEATURE_COLUMNS

        seen: set[str] = set()
        for rule in self.custom:
            if rule.name in seen:
                raise ValueError(f"custom segment name {rule.name!r} is used twice")
            if rule.name in FEATURE_COLUMNS:
                raise ValueError(f"custom segment name {rule.name!r} is a built-in column; choose another")
            seen.add(rule.name)
        return self
