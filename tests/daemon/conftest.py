"""Every daemon test sees the fake connector (kind ``fake``); helpers live in harness.py."""

from collections.abc import Iterator

import fakecrm
import pytest


@pytest.fixture(autouse=True)
def _fake_connector() -> Iterator[None]:
    fakecrm.register()
    yield
    fakecrm.unregister()
