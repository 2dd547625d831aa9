"""Names and dates of birth reach France and nobody else in the house, and not forever."""
from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis

from shared import topics as T
from tests.support import factory as f
from tests.support.factory import DAY, HOUR, T0

pytestmark = pytest.mark.integration

NAME, GIVEN, BORN = "Zebediah-Quist", "Ottoline", "1987-03-14"


async def _raw(bootstrap: str, topic: str) -> list[bytes]:
    reader = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                              enable_auto_commit=False)
    await reader.start()
    try:
        values: list[bytes] = []
        while True:
            got = await reader.getmany(timeout_ms=1500)
            if not got:
                return values
            values += [r.value or b"" for recs in got.values() for r in recs]
    finally:
        await reader.stop()


async def test_particulars_go_to_france_alone_and_are_forgotten_after_the_retention_period(house, client, observer):
    arrival = {**f.arrival("PD-1", T0), "family_name": NAME, "given_names": GIVEN, "date_of_birth": BORN}
    await client.publish(T.BORDER_ARRIVALS, arrival)
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi("PD-P", T0 + HOUR))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted("PD-P", T0 + HOUR))
    request = (await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="PD-1"))[0]
    assert (request["family_name"], request["given_names"], request["date_of_birth"]) == (NAME, GIVEN, BORN)
    for topic in (T.INTAKE_ACCEPTED, T.ENFORCEMENT_SCREENED, T.MATCHING_INSTRUCTIONS):
        values = await _raw(house.bootstrap, topic)
        assert values and not [v for v in values if NAME.encode() in v or GIVEN.encode() in v or BORN.encode() in v], topic
    assert any(NAME.encode() in v for v in await _raw(house.bootstrap, T.INTAKE_PARTICULARS))

    redis = Redis.from_url(house.redis_url)
    try:
        assert NAME.encode() in (await redis.hget("{transfer}:records", "particulars:PD-1") or b"")
        for service in ("intake", "enforcement", "matching"):
            records = await redis.hgetall(f"{{{service}}}:records")
            assert not [k for k, v in records.items() if NAME.encode() in v], service
        # 30 days after landing (event time), transfer forgets them: the next arrival moves its clock
        await client.publish(T.BORDER_ARRIVALS, f.arrival("PD-2", T0 + 30 * DAY + HOUR))
        for _ in range(100):
            if await redis.hget("{transfer}:records", "particulars:PD-1") is None:
                break
            await asyncio.sleep(0.2)
        assert await redis.hget("{transfer}:records", "particulars:PD-1") is None
        assert await redis.hget("{transfer}:records", "particulars:PD-2") is not None
    finally:
        await redis.aclose()
