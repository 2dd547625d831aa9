"""The one consume -> decide -> publish -> persist -> commit loop every service runs.

A service is a `Service`: it keeps its state in memory, decides from each input record, and
puts what it decided into a `BatchContext` (records to store, events to publish). The runner:

* consumes its input topics in batches with FastStream (AckPolicy.NACK_ON_ERROR: offsets are
  committed only after the batch's work; an error rewinds and the batch is delivered again);
* skips records at offsets the state already consumed (a redelivery after a crash), and events
  whose event_id it has seen (duplicates);
* publishes what the batch decided, then commits the state with ONE Lua script (records,
  consumed event ids and offsets, version check, weekly cap check), then acknowledges.
  Outbound ids are derived from their causes, so a batch decided again after a crash publishes
  the same events with the same ids and consumers drop them;
* on start against an empty Redis, rebuilds the state by replaying its input topics from the
  beginning up to the group's committed offsets without publishing (what was committed was
  published before). A Redis flushed mid-run is noticed by the version check and rebuilt the
  same way.
"""
from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from redis.asyncio import Redis

from shared.events.base import Event
from shared.settings import Settings
from shared.store import CapExceeded, Changes, RecordStore, Snapshot, StaleState

log = logging.getLogger("oioo.runtime")

JSON_HEADERS = {"content-type": "application/json"}


@dataclass
class Outgoing:
    topic: str
    key: str | None
    value: bytes
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON_HEADERS))


class BatchContext:
    """What one batch decided: state changes to commit and events to publish."""

    def __init__(self, seen: set[str], replay: bool = False):
        self._seen = seen
        self.replay = replay
        self.changes = Changes()
        self.out: list[Outgoing] = []
        self._new_seen: set[str] = set()

    def first_time(self, event_id: str) -> bool:
        """True once per event id across the service's whole history (and records it)."""
        if event_id in self._seen or event_id in self._new_seen:
            return False
        self._new_seen.add(event_id)
        self.changes.seen.append(event_id)
        return True

    def emit(self, topic: str, key: str | None, event: Event | bytes) -> None:
        value = event if isinstance(event, bytes) else event.to_json()
        self.out.append(Outgoing(topic, key, value))


class Service(ABC):
    """A service's decisions over its in-memory state; no I/O here."""

    name: str
    input_topics: tuple[str, ...]

    @abstractmethod
    def restore(self, snapshot: Snapshot) -> None:
        """Replace the in-memory state with what Redis holds."""

    @abstractmethod
    def handle(self, record: ConsumerRecord, ctx: BatchContext) -> None:
        """Decide on one input record; never raises for bad input (dead-letter it instead)."""


async def _raw_decoder(msg: Any) -> Any:
    # Keep the raw bytes: signatures are checked on them, and bad JSON must become a dead
    # letter rather than a decoding error inside the framework.
    return msg.body


class Runner:
    def __init__(self, service: Service, settings: Settings, redis: Redis | None = None):
        self.service = service
        self.settings = settings
        self.group_id = f"oioo-{service.name}"
        self.redis = redis or Redis.from_url(settings.redis_url)
        self.store = RecordStore(self.redis, service.name)
        self.version = 0
        self.seen: set[str] = set()
        self.offsets: dict[str, int] = {}
        self.broker = KafkaBroker(
            settings.kafka_bootstrap_servers,
            acks="all",
            enable_idempotence=False,
            client_id=f"oioo-{service.name}",
            log_level=logging.DEBUG,
        )
        self.subscriber = self.broker.subscriber(
            *service.input_topics,
            group_id=self.group_id,
            batch=True,
            max_records=settings.max_batch,
            batch_timeout_ms=50,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_raw_decoder,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=max(100, settings.session_timeout_ms // 5),
            title=f"{service.name}-input",
        )
        self.subscriber(self._consume)
        self.app = FastStream(self.broker)
        self.app.on_startup(self.load)
        self.app.after_startup(self._announce_ready)
        self._lock = asyncio.Lock()

    # ---- state ---------------------------------------------------------------------------
    def _adopt(self, snap: Snapshot) -> None:
        self.version = snap.version
        self.seen = set(snap.seen)
        self.offsets = dict(snap.offsets)
        self.service.restore(snap)

    async def load(self) -> None:
        snap = await self.store.load()
        if snap.version == 0:
            await self.rebuild()
        else:
            self._adopt(snap)
            log.info("%s: state loaded at version %s", self.service.name, snap.version)

    async def rebuild(self) -> None:
        """Replay the input topics up to the committed offsets, publishing nothing."""
        self._adopt(Snapshot(0, {}, set(), {}, {}))
        ends = await self._committed_offsets()
        if not ends:
            return
        log.warning("%s: Redis holds no state; rebuilding from %d partitions", self.service.name, len(ends))
        reader = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            enable_auto_commit=False, auto_offset_reset="earliest", group_id=None,
        )
        await reader.start()
        try:
            reader.assign(list(ends))
            await reader.seek_to_beginning(*ends)
            # One context and ONE commit for the whole replay: a crash half-way leaves Redis
            # empty, so the next start rebuilds again instead of trusting a partial state.
            ctx = BatchContext(self.seen, replay=True)
            remaining = dict(ends)
            while remaining:
                got = await reader.getmany(*remaining, timeout_ms=1000, max_records=self.settings.max_batch)
                for rec in (r for recs in got.values() for r in recs):
                    tp = TopicPartition(rec.topic, rec.partition)
                    if rec.offset < ends[tp]:
                        self._take(rec, ctx)
                for tp in list(remaining):
                    if await reader.position(tp) >= ends[tp]:
                        remaining.pop(tp)
            if not ctx.changes.empty():
                self.version = await self.store.commit(0, ctx.changes)
                self.seen.update(ctx.changes.seen)
                self.offsets.update(ctx.changes.offsets)
        finally:
            await reader.stop()
        log.warning("%s: rebuilt to version %s", self.service.name, self.version)

    async def _committed_offsets(self) -> dict[TopicPartition, int]:
        probe = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=self.group_id, enable_auto_commit=False,
        )
        await probe.start()
        try:
            ends = {}
            for topic in self.service.input_topics:
                parts = probe.partitions_for_topic(topic)
                if parts is None:
                    await probe.topics()
                    parts = probe.partitions_for_topic(topic) or set()
                for p in parts:
                    tp = TopicPartition(topic, p)
                    committed = await probe.committed(tp)
                    if committed:
                        ends[tp] = committed
            return ends
        finally:
            await probe.stop()

    # ---- the loop ------------------------------------------------------------------------
    async def _consume(self, body: Any, msg: KafkaMessage) -> None:
        raw = msg.raw_message
        records = list(raw) if isinstance(raw, tuple) else [raw]
        await self._apply(records, replay=False)

    async def _apply(self, records: list[ConsumerRecord], replay: bool) -> None:
        async with self._lock:
            await self._apply_unlocked(records, replay)

    async def _apply_unlocked(self, records: list[ConsumerRecord], replay: bool) -> None:
        try:
            await self._apply_batch(records, replay)
        except (StaleState, CapExceeded):
            raise
        except Exception:
            # the in-memory state holds half a batch: go back to what Redis holds, then let
            # the batch be delivered again
            log.exception("%s: batch failed; state reloaded, batch will be delivered again", self.service.name)
            await self._recover()
            raise

    def _take(self, rec: ConsumerRecord, ctx: BatchContext) -> None:
        """Hand one record to the service unless its offset was consumed already, and track it."""
        tp = f"{rec.topic}:{rec.partition}"
        if rec.offset < self.offsets.get(tp, 0) or rec.offset < ctx.changes.offsets.get(tp, 0):
            return
        self.service.handle(rec, ctx)
        ctx.changes.offsets[tp] = rec.offset + 1

    async def _apply_batch(self, records: list[ConsumerRecord], replay: bool) -> None:
        ctx = BatchContext(self.seen, replay=replay)
        for rec in records:
            self._take(rec, ctx)
        if ctx.changes.empty():
            return
        if not replay and ctx.out:
            await self._publish(ctx.out)
        try:
            self.version = await self.store.commit(self.version, ctx.changes)
        except StaleState as stale:
            log.error("%s: state version moved to %s under us; reloading", self.service.name, stale.current)
            await self._recover()
            raise
        except CapExceeded as exc:
            log.critical("%s: store refused a batch over the weekly cap: %s", self.service.name, exc)
            await self._recover()
            raise
        self.seen.update(ctx.changes.seen)
        self.offsets.update(ctx.changes.offsets)

    async def _recover(self) -> None:
        snap = await self.store.load()
        if snap.version == 0:
            await self.rebuild()
        else:
            self._adopt(snap)

    async def _publish(self, out: list[Outgoing]) -> None:
        futures = [
            await self.broker.publish(o.value, o.topic, key=o.key.encode() if o.key else None,
                                      headers=o.headers, no_confirm=True)
            for o in out
        ]
        await asyncio.gather(*futures)

    async def _announce_ready(self) -> None:
        if not self.settings.ready_file:
            return

        async def wait_assigned() -> None:
            while True:
                consumer = getattr(self.subscriber, "consumer", None)
                if consumer is not None and consumer.assignment():
                    Path(self.settings.ready_file).write_text("ready\n")
                    log.info("%s: consuming %s", self.service.name, sorted(map(str, consumer.assignment())))
                    return
                await asyncio.sleep(0.1)

        self._ready_task = asyncio.create_task(wait_assigned())


def run(service: Service, settings: Settings | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = settings or Settings.from_env()
    runner = Runner(service, settings)
    asyncio.run(runner.app.run())
