"""Bitrix24 connector: inbound webhook or OAuth local app, batch-chained ID-window export."""

from __future__ import annotations

from typing import Any

from connectors.bitrix24.options import Bitrix24Source
from segsync.registry import ConnectorSpec


def _factory(source: Bitrix24Source, ctx: Any) -> Any:
    from connectors.bitrix24.connector import Bitrix24Connector  # lazy: config checks need no HTTP stack

    return Bitrix24Connector(source, ctx)


async def _authorize(source: Bitrix24Source, tokens: Any, code: str) -> str:
    from connectors.bitrix24.auth import exchange_code

    return await exchange_code(source, tokens, code)


#: The entry point names ``spec``: once ``connectors.bitrix24.connector`` (the module) is imported, Python
#: binds it as this package's attribute ``connector``, shadowing any spec stored under that name.
spec = ConnectorSpec(
    kind="bitrix24", source_model=Bitrix24Source, factory=_factory, title="Bitrix24", authorize=_authorize
)
