"""A new shard of enforcement (shared/shards.py) starts from what its sibling shards all consumed.

Each enforcement shard reads every partition in a group of its own, so a shard added later has a
group without offsets. Its people were other shards' until now, and what every sibling consumed
was published by one of them: the new shard replays that much without publishing, and decides
the rest as live traffic. Without this, it would decide the whole log as live traffic and publish
its people's history again.
"""
from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared import topics as T
from shared.catch_up import CatchUp
from shared.settings import Settings

pytestmark = pytest.mark.integration
TP = TopicPartition(T.INTAKE_ACCEPTED, 0)


async def _commit(bootstrap: str, group: str, offset: int) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TP])
        await consumer.commit({TP: offset})
    finally:
        await consumer.stop()


def _catch_up(bootstrap: str, group: str, siblings: tuple[str, ...]) -> CatchUp:
    return CatchUp(Settings(kafka_bootstrap_servers=bootstrap), group, (T.INTAKE_ACCEPTED,), (), {},
                   lambda down: None, "enforcement-s2", siblings=siblings)


async def test_a_new_shard_replays_silently_what_every_sibling_consumed(infra):
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for n in range(10):
            await producer.send_and_wait(T.INTAKE_ACCEPTED, b'{"n":%d}' % n, partition=0)
    finally:
        await producer.stop()
    await _commit(infra.bootstrap, "oioo-enforcement", 7)
    await _commit(infra.bootstrap, "oioo-enforcement-s1", 5)
    siblings = ("oioo-enforcement", "oioo-enforcement-s1")

    new = _catch_up(infra.bootstrap, "oioo-enforcement-s2", siblings)
    assert await new.committed_offsets() == {TP: 5}  # the least they all consumed
    replayed = []

    async def replay(chunk):
        replayed.extend(r.offset for r in chunk)

    await new.run({}, replay)
    assert replayed == [0, 1, 2, 3, 4]
    # a shard whose group has offsets keeps its own; without siblings, nothing stands in
    assert await _catch_up(infra.bootstrap, "oioo-enforcement-s1", siblings).committed_offsets() == {TP: 5}
    assert await _catch_up(infra.bootstrap, "oioo-enforcement-s2", ()).committed_offsets() == {}
