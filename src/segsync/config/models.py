"""The root of the rules file, and the model built with every installed connector's source options."""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, create_model, model_validator

from segsync.config.actions import ActionConfig, ActionLimits, WorkingHours, WritebackConfig
from segsync.config.segments import SegmentsConfig, where_context
from segsync.config.sources import SourceBase, Strict
from segsync.config.types import TimeZoneName


class DaemonConfig(Strict):
    listen: str = Field(default="127.0.0.1:8787", pattern=r"^[\w.\-\[\]:]+:\d{1,5}$", description="host:port")
    webhook_debounce: float = Field(default=5.0, ge=0, description="Seconds to gather webhook events into one pull.")
    public_url: str | None = Field(default=None, description="How the CRMs reach this daemon (for webhook setup).")


class Rules(Strict):
    """The whole rules file. Sources are typed per CRM kind; see :func:`rules_model`."""

    timezone: TimeZoneName = Field(default="Europe/Moscow", description="For schedules, due dates and reports.")
    language: Literal["ru", "en"] = Field(default="ru", description="Language of texts managers see.")
    store: str | None = Field(default=None, description="SQLAlchemy URL of the store (SEGSYNC_STORE_URL wins).")
    sources: list[SourceBase] = Field(default_factory=list)
    segments: SegmentsConfig = SegmentsConfig()
    writeback: WritebackConfig = WritebackConfig()
    actions: list[ActionConfig] = Field(default_factory=list)
    working_hours: WorkingHours = WorkingHours()
    limits: ActionLimits = ActionLimits()
    daemon: DaemonConfig = DaemonConfig()

    @model_validator(mode="wrap")
    @classmethod
    def _where_columns(cls, data: Any, handler: Any) -> Rules:
        """Let ``where:`` conditions see the sources' ``fields:`` keys and the custom segment names."""
        with where_context(*_where_names(data)):
            return handler(data)

    @model_validator(mode="after")
    def _cross_checks(self) -> Rules:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {', '.join(dupes)}")
        action_names = [a.name for a in self.actions]
        dupes = sorted({n for n in action_names if action_names.count(n) > 1})
        if dupes:
            raise ValueError(f"action names must be unique; repeated: {', '.join(dupes)}")
        known = set(names)
        for action in self.actions:
            for name in action.sources or ():
                if name not in known:
                    raise ValueError(f"action {action.name!r} names unknown source {name!r}")
        return self

    def source(self, name: str) -> SourceBase:
        for src in self.sources:
            if src.name == name:
                return src
        raise KeyError(name)


def _where_names(data: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Names from the raw document that conditions may use, before the sections are validated."""
    if not isinstance(data, dict):
        return (), ()
    fields: list[str] = []
    for src in data.get("sources") or ():
        mapping = src.get("fields") if isinstance(src, dict) else None
        if isinstance(mapping, dict):
            fields.extend(str(k) for k in mapping if str(k) not in fields)
    segments = data.get("segments")
    custom = segments.get("custom") if isinstance(segments, dict) else None
    names = [str(r["name"]) for r in custom or () if isinstance(r, dict) and isinstance(r.get("name"), str)]
    return tuple(fields), tuple(names)


def _source_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("kind")
    return getattr(value, "kind", None)


@functools.cache
def rules_model() -> type[Rules]:
    """Build ``Rules`` whose ``sources`` is a union of every installed connector's source model."""
    from segsync.registry import connector_specs

    specs = connector_specs()
    if not specs:
        return Rules
    members = tuple(Annotated[spec.source_model, Tag(kind)] for kind, spec in sorted(specs.items()))
    source_type = Annotated[Union[members], Discriminator(_source_kind)]  # noqa: UP007 - dynamic tuple
    return create_model(  # type: ignore[call-overload]
        "Rules",
        __base__=Rules,
        sources=(list[source_type], Field(default_factory=list, description="CRM accounts to sync.")),
    )
