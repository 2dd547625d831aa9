"""The relay: publishes what the commit script put in the outbox, then trims it.

Only the lease holder relays, and the trim is fenced, so a stale instance can never drop an
entry the new writer has not sent. It publishes through its own aiokafka producer, so a
batch's messages go straight into the accumulator and carry exactly the committed headers,
the same on every publish. While this instance knows the outbox held nothing before a batch,
that batch's entry is the whole outbox and is published from memory (the bytes it holds)
without reading it back; after any reload, failure or restart the outbox is read from Redis.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping

from aiokafka import AIOKafkaProducer

from shared.backoff import until_done
from shared.batch import JSON_HEADERS, TRACEPARENT, Outgoing
from shared.metrics import ServiceMetrics
from shared.partitioner import partition_for, partitions_for
from shared.settings import Settings
from shared.store import RecordStore

Message = tuple[str, str | None, bytes, str | None]  # topic, key, value, traceparent

# The two header lists a message can carry, as the producer takes them: the JSON content type,
# and the traceparent after it when the message has one.
_PLAIN = [(k, v.encode()) for k, v in JSON_HEADERS.items()]


def _headers(trace: str | None) -> list[tuple[str, bytes]]:
    return [*_PLAIN, (TRACEPARENT, trace.encode())] if trace else _PLAIN


class Relay:
    def __init__(self, settings: Settings, instance: str, store: RecordStore, lease_value: Callable[[], str],
                 metrics: ServiceMetrics, redis_outage: Callable[[bool], None],
                 broker_outage: Callable[[bool], None], fenced: Callable[[str], None], kafka_options: dict,
                 pinned: Mapping[str, int] | None = None):
        self.settings, self.instance, self.store = settings, instance, store
        self.pinned = dict(pinned or {})  # topic -> the one partition this instance writes (a shard's)
        self.lease_value, self.metrics, self.fenced = lease_value, metrics, fenced
        self.redis_outage, self.broker_outage = redis_outage, broker_outage
        self.kafka_options = kafka_options
        self.producer: AIOKafkaProducer | None = None
        self.outbox_empty = False  # True only while this instance knows the outbox holds nothing

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers, acks="all", enable_idempotence=False,
            client_id=f"oioo-{self.instance}-relay", linger_ms=self.settings.linger_ms,
            max_batch_size=self.settings.max_produce_batch_bytes, partitioner=partition_for,
            **self.kafka_options)
        await until_done("broker (producer)", self.producer.start, self.broker_outage)

    async def stop(self) -> None:
        if self.producer is not None:
            await asyncio.wait_for(self.producer.stop(), timeout=5)

    def forget(self) -> None:
        """The state was reloaded: another writer may have left entries, read them first."""
        self.outbox_empty = False

    async def flush(self, committed: tuple[int, list[Outgoing]] | None = None) -> None:
        """Publish the outbox, oldest batch first, and trim what the broker acknowledged.
        `committed` is the entry the batch just committed, if it wrote one."""
        if self.outbox_empty:
            if committed is None:
                return
            version, out = committed
            self.outbox_empty = False
            await self._send([(o.topic, o.key, o.value, o.headers.get(TRACEPARENT)) for o in out])
            await self._trim(version)
            self.outbox_empty = True
            return
        while True:
            entries = await until_done("redis (outbox)", self.store.pending, self.redis_outage)
            if not entries:
                self.outbox_empty = True
                return
            for _, payload in entries:
                await self._send([(topic, key, value.encode("utf-8"), trace)
                                  for topic, key, value, trace in json.loads(payload)])
            await self._trim(entries[-1][0])

    async def _send(self, messages: list[Message]) -> None:
        await until_done("broker (publish)", lambda: self.publish(messages), self.broker_outage)

    async def _trim(self, upto: int) -> None:
        trimmed = await until_done("redis (trim)", lambda: self.store.trim(self.lease_value(), upto),
                                   self.redis_outage)
        if trimmed < 0:
            self.fenced("the outbox trim was fenced")

    async def publish(self, messages: list[Message]) -> None:
        """Every message into record batches built here, one partition at a time and in the
        outbox's order within each, then wait for all the acknowledgements. Each message goes to
        the partition `send` would give it (the producer's partitioner, `partition_for`), but
        one `send` per message cost its services about a tenth of their CPU in a replay. A
        topic's keys are hashed together (`partitions_for`): one at a time, murmur2 in Python
        was another 3 % of every service."""
        await asyncio.gather(*await send_keyed(self.producer, [
            (topic, key.encode() if key else None, value, _headers(trace)) for topic, key, value, trace in messages],
            self.pinned))
        self.metrics.published.inc(len(messages))


Keyed = tuple[str, bytes | None, bytes, list]  # topic, key, value, headers as the producer takes them


async def send_keyed(producer: AIOKafkaProducer, messages: list[Keyed],
                     pinned: Mapping[str, int] | None = None) -> list:
    """Each message on the partition the producer's default partitioner gives its key (a
    topic's keys hashed together, `partitions_for`), or on a `pinned` topic's one partition, in
    record batches built here, in order within each partition; returns the batches' delivery
    futures."""
    by_topic: dict[str, list[Keyed]] = {}
    for message in messages:
        by_topic.setdefault(message[0], []).append(message)
    by_partition: dict[tuple[str, int], list[tuple[bytes | None, bytes, list]]] = {}
    pinned = pinned or {}
    for topic, group in by_topic.items():
        if topic in pinned:
            by_partition[(topic, pinned[topic])] = [(key, value, headers) for _, key, value, headers in group]
            continue
        known = sorted(await producer.partitions_for(topic))
        available = sorted(producer.client.cluster.available_partitions_for_topic(topic) or known)
        keys = [key for _, key, _, _ in group]
        for (_, key, value, headers), partition in zip(group, partitions_for(keys, known, available)):
            by_partition.setdefault((topic, partition), []).append((key, value, headers))
    return await _send_in_batches(producer, by_partition)


async def _send_in_batches(producer: AIOKafkaProducer,
                          by_partition: dict[tuple[str, int], list[tuple[bytes | None, bytes, list]]]) -> list:
    """Each partition's (key, value, headers) into as few record batches as fit, in order, handed
    to the producer; returns the batches' delivery futures."""
    futures = []
    for (topic, partition), group in by_partition.items():
        batch = producer.create_batch()
        for key, value, headers in group:
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                # full: send it and start the next (a batch always takes its first record)
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None, headers=headers)
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures
