"""Connectors are found through the ``segsync.connectors`` entry-point group.

The core never imports a connector by name, so a third CRM is a new package, not a core change.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segsync.config.sources import SourceBase
    from segsync.contract import Connector, ConnectorContext, TokenStore


@dataclass(frozen=True)
class ConnectorSpec:
    """What a connector package exports as its entry point."""

    kind: str
    source_model: type[SourceBase]
    factory: Callable[[Any, ConnectorContext], Connector]
    title: str = ""
    #: ``segsync auth KIND``: trade a one-time authorization code for stored tokens; returns a summary line.
    authorize: Callable[[Any, TokenStore, str], Awaitable[str]] | None = None


@functools.cache
def connector_specs() -> dict[str, ConnectorSpec]:
    specs: dict[str, ConnectorSpec] = {}
    for ep in entry_points(group="segsync.connectors"):
        spec = ep.load()
        if not isinstance(spec, ConnectorSpec):
            raise TypeError(f"entry point {ep.name} must be a ConnectorSpec, got {type(spec).__name__}")
        specs[spec.kind] = spec
    return specs


def connector_spec(kind: str) -> ConnectorSpec:
    try:
        return connector_specs()[kind]
    except KeyError:
        raise KeyError(f"no connector installed for kind {kind!r}") from None
