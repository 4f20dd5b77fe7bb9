"""Fixtures: a fake portal behind respx and connectors pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import respx

from connectors.bitrix24.connector import Bitrix24Connector
from connectors.bitrix24.options import Bitrix24Source
from segsync.contract import ConnectorContext

from .fakeportal import PORTAL, WEBHOOK, FakePortal


class MemoryTokens:
    """A TokenStore for webhook tests (they never touch tokens)."""

    def __init__(self, data: dict[str, Any] | None = None):
        self.data = data

    async def load(self) -> dict[str, Any] | None:
        return self.data

    async def save(self, tokens: dict[str, Any]) -> None:
        self.data = tokens

    async def refresh(self, seen, refresher):  # pragma: no cover - not used with webhooks
        self.data = await refresher(self.data or {})
        return self.data


class Events:
    """Records the context hooks (requests and throttling) the connector reports."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.throttles: list[str] = []

    def context(self, tokens: Any = None) -> ConnectorContext:
        return ConnectorContext(
            tokens=tokens or MemoryTokens(),
            on_request=lambda m, s: self.requests.append((m, s)),
            on_throttle=self.throttles.append,
            timeout=5.0,
        )


def make_source(**overrides: Any) -> Bitrix24Source:
    data: dict[str, Any] = {
        "name": "b24",
        "kind": "bitrix24",
        "webhook_url": WEBHOOK,
        "limits": {"per_second": 500, "burst": 500},
    }
    data.update(overrides)
    return Bitrix24Source.model_validate(data)


@pytest.fixture
def portal() -> AsyncIterator[FakePortal]:
    fake = FakePortal()
    with respx.mock(assert_all_called=False) as router:
        router.route(host="example.bitrix24.ru").mock(side_effect=fake)
        yield fake


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def connect(events: Events) -> Callable[..., Bitrix24Connector]:
    def build(**overrides: Any) -> Bitrix24Connector:
        return Bitrix24Connector(make_source(**overrides), events.context())

    return build


__all__ = ["PORTAL", "WEBHOOK", "Events", "MemoryTokens", "make_source"]
