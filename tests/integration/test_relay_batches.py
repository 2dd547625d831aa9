"""The relay builds its record batches itself: every message must still land where the producer's
own `send` would put it (aiokafka's default partitioner: murmur2 of the key), in the outbox's
order within each partition, with its key, value and headers, also when a partition's messages
fill several batches."""
from __future__ import annotations

import asyncio
import json

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from shared import metrics, topics as T
from shared.batch import TRACEPARENT
from shared.relay import Relay
from shared.settings import Settings

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
KEYED = (T.OPS_AUDIT, T.INTAKE_ACCEPTED, T.LIAISON_UK_RETURN_REQUESTS)


def _noop(*_args) -> None:
    pass


def _messages() -> list[tuple[str, str | None, bytes, str | None]]:
    out = [(KEYED[i % 3], f"subject-{i % 41}", json.dumps({"n": i, "pad": "x" * (i % 300)}).encode(),
            TRACE if i % 2 else None) for i in range(600)]
    out += [(T.OPS_ALERTS, None, json.dumps({"n": 600 + i}).encode(), None) for i in range(3)]
    return out


async def _read_all(bootstrap: str, topics: set[str], expected: int) -> list:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=50)
    await consumer.start()
    try:
        await consumer.topics()
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        got = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(got) < expected and loop.time() < deadline:
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                got.extend(recs)
        return got
    finally:
        await consumer.stop()


async def test_the_relay_puts_every_message_where_send_would_in_order(infra):
    # 4 KiB batches: each partition's messages fill several of them
    settings = Settings(kafka_bootstrap_servers=infra.bootstrap, max_produce_batch_bytes=4096)
    relay = Relay(settings, "relay-test", None, lambda: "", metrics.for_service("relay-test"),
                  _noop, _noop, _noop, {})
    await relay.start()
    messages = _messages()
    try:
        await relay.publish(messages[:300])
        await relay.publish(messages[300:])
    finally:
        await relay.stop()

    got = await _read_all(infra.bootstrap, {m[0] for m in messages}, len(messages))
    assert sorted(json.loads(r.value)["n"] for r in got) == list(range(len(messages)))
    reference = DefaultPartitioner()

    def partition(topic: str, key: str) -> int:
        every = list(range(T.TOPICS_BY_NAME[topic].partitions))
        return reference(key.encode(), every, every)

    by_n = {json.loads(value)["n"]: (topic, key, value, trace) for topic, key, value, trace in messages}
    order: dict[tuple[str, int], list[int]] = {}
    for rec in got:
        n = json.loads(rec.value)["n"]
        topic, key, value, trace = by_n[n]
        assert (rec.topic, rec.value) == (topic, value)
        assert rec.key == (key.encode() if key else None)
        headers = dict(rec.headers)
        assert headers["content-type"] == b"application/json"
        assert headers.get(TRACEPARENT) == (trace.encode() if trace else None)
        if key is not None:
            assert rec.partition == partition(topic, key), (topic, key)
        order.setdefault((rec.topic, rec.partition), []).append(n)
    assert sum(1 for topic, _ in order if topic != T.OPS_ALERTS) == 7  # 3 + 1 + 3 partitions used
    for (topic, part), ns in order.items():
        assert ns == sorted(ns), (topic, part)  # the outbox's order within each partition
