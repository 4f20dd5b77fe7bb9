"""CSV deals export: a read-only source so an analyst can run the engine on a file (e.g. CDNOW)."""

from __future__ import annotations

from typing import Any

from connectors.csvfile.options import CsvSource
from segsync.registry import ConnectorSpec


# The implementation lives in ``reader.py``, not ``connector.py``: importing a submodule named ``connector``
# would replace this package's ``connector`` attribute (the entry point) with the module.
def _factory(source: CsvSource, ctx: Any) -> Any:
    from connectors.csvfile.reader import CsvConnector

    return CsvConnector(source, ctx)


spec = ConnectorSpec(kind="csv", source_model=CsvSource, factory=_factory, title="CSV deals export")
