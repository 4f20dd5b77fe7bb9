"""Build the connector of a configured source (through the registry; the core names no CRM)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from segsync.config.sources import SourceBase
from segsync.contract import Connector, ConnectorContext
from segsync.registry import connector_spec
from segsync.tokens import DbTokenStore


def open_connector(engine: Engine, source_id: int, source: SourceBase, **context: Any) -> Connector:
    """A connector ready for ``async with``; ``context`` overrides ConnectorContext fields (metrics hooks)."""
    spec = connector_spec(source.kind)
    ctx = ConnectorContext(tokens=DbTokenStore(engine, source_id), **context)
    return spec.factory(source, ctx)
