"""Fixtures for the amoCRM connector tests: a fake account on respx and sources wired to a real store."""

from __future__ import annotations

import time
from typing import Any

import pytest
import respx

from connectors.amocrm.connector import AmoCRMConnector
from connectors.amocrm.options import AmoCRMSource
from segsync.app import ensure_sources
from segsync.contract import ConnectorContext
from segsync.tokens import DbTokenStore

from .fake import BASE, FakeAmo

NOW = 1_750_000_000


def make_source(**over: Any) -> AmoCRMSource:
    data: dict[str, Any] = {
        "name": "amo",
        "kind": "amocrm",
        "base_url": BASE,
        "rate_limit": 50,
        "oauth": {"client_id": "cid", "client_secret": "csecret-123456", "redirect_uri": "https://segsync.example/cb"},
    }
    data.update(over)
    if "long_lived_token" in over:
        data.pop("oauth")
    return AmoCRMSource.model_validate(data)


@pytest.fixture
def fake() -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield FakeAmo().mount(router)


@pytest.fixture
def source_id(engine) -> int:
    return ensure_sources(engine, [make_source()])["amo"]


@pytest.fixture
def store(engine, source_id) -> DbTokenStore:
    return DbTokenStore(engine, source_id)


async def seed_tokens(store: DbTokenStore, fake: FakeAmo, *, expires_at: float | None = None) -> None:
    now = time.time()
    await store.save(
        {
            "access_token": fake.tokens["access"],
            "refresh_token": fake.tokens["refresh"],
            "expires_in": 86400,
            "expires_at": expires_at or now + 86400,
            "obtained_at": now,
        }
    )


def connector(store: DbTokenStore, **over: Any) -> AmoCRMConnector:
    return AmoCRMConnector(make_source(**over), ConnectorContext(tokens=store))
