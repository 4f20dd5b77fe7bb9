"""amoCRM / Kommo connector: OAuth with rotating refresh tokens or a long-lived token."""

from __future__ import annotations

from typing import Any

from connectors.amocrm.options import AmoCRMSource
from segsync.registry import ConnectorSpec


def _factory(source: AmoCRMSource, ctx: Any) -> Any:
    from connectors.amocrm.connector import AmoCRMConnector

    return AmoCRMConnector(source, ctx)


async def _authorize(source: AmoCRMSource, store: Any, code: str) -> str:
    """Exchange an authorization code and store the first token pair (``segsync auth amocrm``)."""
    from connectors.amocrm.auth import exchange_code
    from segsync.http import make_client

    async with make_client(base_url=source.base_url) as client:
        record = await exchange_code(source, code, client)
    await store.save(record)
    return f"stored a new token pair for {source.name}; the access token is refreshed automatically from now on"


#: The entry point (``segsync.connectors``). Not called ``connector``: importing the submodule
#: ``connectors.amocrm.connector`` would overwrite a package attribute of that name.
spec = ConnectorSpec(
    kind="amocrm", source_model=AmoCRMSource, factory=_factory, title="amoCRM / Kommo", authorize=_authorize
)
