"""Pytest fixtures for tests that need the sandbox (``pytest_plugins = ["segsync.sandbox.pytest_plugin"]``).

- ``sandbox``: one in-thread sandbox per test module (tiny world, 1 portal, amoCRM when available);
- ``sandbox_factory(**kwargs)``: a fresh sandbox per call (own limits and state), stopped after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from segsync.sandbox.server import load_amocrm
from segsync.sandbox.testing import SandboxHandle, start_in_thread


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    handle = start_in_thread(seed=1, size="tiny", accounts=1 if load_amocrm() else 0)
    yield handle
    handle.stop()


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., SandboxHandle]]:
    handles: list[SandboxHandle] = []

    def make(**kwargs: Any) -> SandboxHandle:
        kwargs.setdefault("size", "tiny")
        kwargs.setdefault("accounts", 0)
        handle = start_in_thread(**kwargs)
        handles.append(handle)
        return handle

    yield make
    for handle in handles:
        handle.stop()
