"""The limiter never lets more than N requests into any rolling second, even if the server checks late."""

from __future__ import annotations

import asyncio
import random
import time

from connectors.amocrm.limits import RollingWindowLimiter

from .conftest import make_source


async def test_no_rolling_second_holds_more_than_the_rate_by_the_servers_clock():
    limiter = RollingWindowLimiter(7)
    checks: list[float] = []  # when a "server" counted each request: anywhere between send and answer
    rng = random.Random(1)

    async def one() -> None:
        slot = await limiter.acquire()
        latency = rng.choice([0.01, 0.02, 0.3])  # sometimes the server stalls
        await asyncio.sleep(latency)
        checks.append(time.monotonic() - rng.uniform(0, latency))
        limiter.release(slot)

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(22)))
    checks.sort()
    assert all(checks[i + 7] - checks[i] >= 1.0 - 0.005 for i in range(len(checks) - 7))
    assert time.monotonic() - started < 4.5  # and still about 7/s


async def test_pause_holds_everyone():
    limiter = RollingWindowLimiter(50)
    limiter.pause(0.3)
    started = time.monotonic()
    limiter.release(await limiter.acquire())
    assert time.monotonic() - started >= 0.29


def test_base_url_keeps_a_path_and_subdomain_can_be_given():
    src = make_source(base_url="http://127.0.0.1:8000/amo/test/", subdomain="test")
    assert src.base_url == "http://127.0.0.1:8000/amo/test" and src.subdomain == "test"
    assert make_source(base_url="https://shop.kommo.com").subdomain == "shop"
