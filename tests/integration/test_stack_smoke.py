"""The embedded infrastructure works: a fresh broker with our topics, and a Redis that answers.

These run without the services, so they stay meaningful while services are being written.
"""
from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared import topics as T
from shared.signing import Keyring, verify
from tests.support.client import ContractClient, Observer, make_event

pytestmark = pytest.mark.integration


async def test_broker_has_every_topic_with_its_partitions(infra):
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap)
    await admin.start()
    try:
        assert set(await admin.list_topics()) >= {t.name for t in T.TOPICS}
        described = await admin.describe_topics([t.name for t in T.TOPICS])
    finally:
        await admin.close()
    got = {d["topic"]: len(d["partitions"]) for d in described}
    assert got == {t.name: t.partitions for t in T.TOPICS}


async def test_signed_event_round_trips_through_the_broker(infra):
    keyring = Keyring.from_file(infra.keys_file)
    event = make_event("ArrivalRecorded", "2025-08-10T03:00:00+01:00", arrival_id="arr-smoke-1")
    async with ContractClient(infra.bootstrap, keyring) as client:
        sent = await client.publish(T.BORDER_ARRIVALS, event)
    assert 0 <= sent.partition < T.TOPICS_BY_NAME[T.BORDER_ARRIVALS].partitions

    consumer = AIOKafkaConsumer(bootstrap_servers=infra.bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(T.BORDER_ARRIVALS, sent.partition)
        consumer.assign([tp])
        consumer.seek(tp, sent.offset)
        records = (await consumer.getmany(tp, timeout_ms=10_000)).get(tp, [])
    finally:
        await consumer.stop()
    assert records, "the produced record was not fetched back"
    rec = records[0]
    assert rec.key == b"arr-smoke-1"
    headers = dict(rec.headers)
    assert headers["content-type"] == b"application/json"
    assert verify(keyring, T.BORDER_ARRIVALS, headers, rec.value) is None
    assert verify(keyring, T.CASEWORK_UPDATES, headers, rec.value)[0] == "unauthorised_producer"


async def test_observer_sees_outbound_events_from_the_beginning(infra):
    keyring = Keyring.from_file(infra.keys_file)
    alert = make_event("Alert", "2025-08-10T03:00:00+01:00", alert_id="al-1", severity="info",
                       kind="cap_reached", subject_ref="2025-W32", message="smoke")
    async with ContractClient(infra.bootstrap, keyring) as client:
        await client.publish(T.OPS_ALERTS, alert, key="2025-W32", sign=False)
        async with Observer(infra.bootstrap) as observer:
            [seen] = await observer.wait_for(T.OPS_ALERTS, "Alert", kind="cap_reached", timeout=15)
            assert seen == alert and seen.key == "2025-W32"
            with pytest.raises(AssertionError, match="seen so far"):
                await observer.wait_for(T.OPS_AUDIT, "Decision", timeout=0.5)
            await client.publish(T.OPS_AUDIT, make_event("Decision", "2025-08-10T03:00:00+01:00"),
                                 key="x", sign=False)
            await observer.wait_for(lambda e: e.topic == T.OPS_AUDIT, timeout=15)
            assert [e.topic for e in observer.events()] == [T.OPS_ALERTS, T.OPS_AUDIT]


async def test_redis_answers(infra):
    client = aioredis.Redis.from_url(infra.redis_url)
    try:
        assert await client.ping()
        await client.set("smoke", "1")
        assert await client.get("smoke") == b"1"
    finally:
        await client.aclose()
