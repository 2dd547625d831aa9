"""A lease that expired while nobody else wrote (a long stall of this instance, a Redis hiccup)
is held again without reloading the whole state: Redis is still at the instance's version."""
from __future__ import annotations

import pytest
from redis.asyncio import Redis

from shared import topics as T
from tests.support import factory as f
from tests.support.factory import HOUR, T0

pytestmark = pytest.mark.integration


async def _pair(client, n: int, at) -> None:
    await client.publish(T.BORDER_ARRIVALS, f.arrival(f"A{n}", at))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi(f"P{n}", at))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted(f"P{n}", at))


async def test_a_lease_that_vanished_with_nobody_else_writing_is_held_again_without_a_reload(house, client, observer):
    await _pair(client, 1, T0)
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A1")
    loads = house.log("matching", 10_000).count("state loaded at version")
    redis = Redis.from_url(house.redis_url)
    try:
        await redis.delete("{matching}:lease")  # as if it had expired
        await _pair(client, 2, T0 + HOUR)
        await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A2")
        holder = (await redis.get("{matching}:lease") or b"").decode()
    finally:
        await redis.aclose()
    log = house.log("matching", 10_000)
    assert "the lease had vanished; held again" in log
    assert log.count("state loaded at version") == loads  # nothing reloaded
    assert holder.split(":")[1] == "matching"
    await observer.quiet(1.5)
    assert len(observer.events(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested")) == 2
