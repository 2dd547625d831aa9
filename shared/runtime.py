"""The one consume -> decide -> commit -> relay -> acknowledge loop every service runs.

A service is a `Service`: it keeps its state in memory, decides from each input record, and
puts what it decided into a `BatchContext` (records to store, events to publish). The runner:

* holds the service's lease first (one fenced writer; a second instance waits as a hot
  standby and takes over when the lease expires); intake and enforcement may run in shards
  (shared/shards.py), one fenced writer per shard, each with its own state, outbox and output
  partition, and a MARK after its output whenever it has read every input to its end;
* loads the state from Redis, publishes what the outbox still holds, and replays the gap
  between the offsets Redis has and the group's committed offsets (a Redis flushed, restarted
  empty or restored from an older backup ends where one never lost would), publishing nothing:
  what Kafka's committed offsets cover was published before;
* consumes its input topics in batches with FastStream (AckPolicy.NACK_ON_ERROR), hands each
  record to the service once (records below the stored offsets are redeliveries, event ids
  already seen are duplicates); a record that makes the service raise is dead-lettered on its
  own with `processing_error` and the batch is decided again without it (poison never blocks);
* finishes the batch once decided to its end (`Service.finish`: what only the batch's end
  state matters for, such as the service's clock), replays and decisions again included;
* commits the batch with ONE Lua script (fencing token, version, weekly cap, records, offsets,
  event ids, outbox), then the relay publishes the outbox and trims it, then the offsets are
  acknowledged. Nothing reaches a topic that Redis did not commit, and a crash anywhere
  publishes the same events (same ids, same content) again;
* waits out outages (broker or Redis unreachable) with capped, jittered backoff, and reports
  not-ready meanwhile; SIGTERM finishes the batch in hand and exits.

This module is the runner's lifecycle and lease; loading and rebuilding its state is
`shared/recovery.py`, deciding and committing a batch `shared/batch_loop.py`, and the event-time
merge of a service's inputs `shared/merged_input.py`.
"""
from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord
from faststream.kafka import TopicPartition
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from shared import faults, heap, metrics, redis_client, topics
from shared.backoff import until_done
from shared.catch_up import CatchUp
from shared.batch import BatchContext, Outgoing, Service
from shared.events.catalogue import PUBLISHED
from shared.events.outbound import Alert
from shared.health import HealthServer
from shared.batch_loop import BatchLoop
from shared.lease import Lease
from shared.merged_input import MergedInput
from shared.recovery import Incomplete, Recovery
from shared.relay import Relay
from shared.security import broker_security, check_production, kafka_client_options
from shared.settings import Settings
from shared.shards import Shard
from shared.store import RecordStore

log = logging.getLogger("oioo.runtime")
__all__ = ["BatchContext", "Outgoing", "Runner", "Service", "serve"]  # the batch API lives in shared.batch

MARK_POLL_S = 0.2  # how often an idle shard looks whether it owes a MARK
LEASE_LOST_EXIT = 75  # EX_TEMPFAIL: the supervisor restarts us, and we wait as a standby


class _Stopping(Exception):
    """The instance is shutting down or lost its lease: the batch is left for the next holder."""


async def _raw_decoder(msg: Any) -> Any:
    # Keep the raw bytes: signatures are checked on them, and bad JSON must become a dead
    # letter rather than a decoding error inside the framework.
    return msg.body


def _fetch_options(service: Service, settings: Settings) -> dict[str, int]:
    """How much a fetch may bring and how long the broker and the subscriber wait for records:
    a merged input (intake; enforcement behind intake's shards) takes a little of every
    partition at a time, a prompt service (`Service.prompt`) waits less (shared/settings.py has
    the measurements)."""
    if service.order_key is not None:
        sizes = {"max_partition_fetch_bytes": settings.merge_fetch_bytes, "fetch_max_bytes": settings.merge_fetch_bytes}
    else:
        sizes = {"fetch_max_bytes": settings.fetch_max_bytes}
    if service.prompt:
        waits = {"fetch_max_wait_ms": settings.prompt_fetch_max_wait_ms,
                 "batch_timeout_ms": settings.prompt_batch_timeout_ms}
    else:
        waits = {"fetch_max_wait_ms": settings.fetch_max_wait_ms, "batch_timeout_ms": settings.batch_timeout_ms}
    return {**sizes, **waits}


class Runner(BatchLoop, Recovery):
    def __init__(self, service: Service, settings: Settings, redis: Redis | None = None):
        self.service = service
        self.settings = settings
        # intake and enforcement may run in shards (shared/shards.py): each its own writer and state
        self.shard = Shard.of(settings, getattr(settings, service.shards_setting)) if service.shards_setting else Shard()
        namespace = self.shard.namespace(service.name)
        self.instance = settings.instance or namespace
        # a shard that reads every partition reads them in a group of its own
        self.group_id = f"oioo-{namespace if service.reads_every_partition else service.name}"
        self.producer_name = f"oioo-{service.name}"
        self.redis = redis or redis_client.connect(settings)  # REDIS_URL, or the Sentinels' primary
        self.store = RecordStore(self.redis, namespace)
        self.lease = Lease(self.redis, self.store, self.instance, settings.lease_ttl_ms)
        self.metrics = metrics.for_service(service.name)
        self.version = 0
        self.seen: dict[str, float] = {}
        self.high = 0.0
        self.offsets: dict[str, int] = {}
        self.loaded = False
        self.incomplete = False
        self.up = {"redis": True, "broker": True}
        self.exit_code = 0
        self._must_recover = False
        self._lease_returned = False  # the keeper held the lease again after it vanished
        self._stopping = False
        self._alerts: list[Alert] = []
        self._figures_at = 0.0
        self._pruned_at = 0.0  # the event time at which memory last forgot old event ids
        self._kept = 0  # how many it kept then
        self.broker = KafkaBroker(
            settings.kafka_bootstrap_servers,
            acks="all",
            enable_idempotence=False,
            client_id=f"oioo-{self.instance}",
            middlewares=[KafkaPrometheusMiddleware(registry=REGISTRY)],
            log_level=logging.DEBUG,
            security=broker_security(settings),
        )
        places = self.shard.places(service.input_topics) if self.shard.split and not service.reads_every_partition else None
        # a shard is given its partitions; otherwise the group shares the topics' out
        inputs = {"partitions": [TopicPartition(t, p, declare=False) for t, p in places]} if places else {}
        self.subscriber = self.broker.subscriber(
            *(() if places else service.input_topics),
            **inputs,
            group_id=self.group_id,
            batch=True,
            max_records=settings.max_batch,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_raw_decoder,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=max(100, settings.session_timeout_ms // 5),
            title=f"{service.name}-input",
            **_fetch_options(service, settings),
        )
        self.subscriber(self._consume)
        # Declared so that the AsyncAPI document shows both directions; the relay publishes.
        for topic in dict.fromkeys((*service.output_topics, topics.OPS_DEAD_LETTERS, topics.OPS_ALERTS)):
            self.broker.publisher(topic, title=f"{service.name}-output:{topic}", schema=PUBLISHED[topic])
        self.app = FastStream(self.broker)
        self.catch_up = CatchUp(settings, self.group_id, service.input_topics, service.expiring_topics,
                                self._kafka_security(), self._broker_outage, self.instance,
                                only=set(places) if places else None, order_key=service.order_key,
                                siblings=self._sibling_groups())
        self.relay = Relay(settings, self.instance, self.store, lambda: self.lease.value or "", self.metrics,
                           self._redis_outage, self._broker_outage, self._lost_lease, self._kafka_security(),
                           pinned={service.sharded_output: self.shard.index} if service.sharded_output else None)
        self._lock = asyncio.Lock()
        self.merged = (MergedInput(service.order_key, settings, service.marked_inputs, marks=self.shard.split)
                       if service.order_key is not None else None)
        self._unmarked = True  # a shard: nothing since its last MARK says it is caught up
        self._batches = 0  # batches handed to _consume

    def _sibling_groups(self) -> tuple[str, ...]:
        """The other shards' groups, when each shard reads every partition in a group of its own."""
        if not (self.shard.split and self.service.reads_every_partition):
            return ()
        return tuple(f"oioo-{Shard(k, self.shard.count).namespace(self.service.name)}"
                     for k in range(self.shard.count) if k != self.shard.index)

    def _kafka_security(self) -> dict[str, Any]:
        return kafka_client_options(self.settings)

    # ---- lifecycle -----------------------------------------------------------------------
    async def main(self) -> int:
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        health = None
        if self.settings.health_port is not None:
            health = HealthServer(self.settings.health_host, self.settings.health_port, self.checks, self.role)
            await health.start()
        try:
            if await self._stand_by():
                # SIGTERM is heard while activating too (a long catch-up, a join that waits)
                activation = asyncio.create_task(self._become_active())
                stopped = asyncio.create_task(self._stop.wait())
                await asyncio.wait({activation, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if activation.done():
                    activation.result()
                    await stopped
                else:
                    activation.cancel()
                    await asyncio.gather(activation, return_exceptions=True)
        finally:
            await self._shutdown()
            if health is not None:
                await health.stop()
        return self.exit_code

    async def _stand_by(self) -> bool:
        """Wait for the lease (shared/lease.py); False when told to stop first."""
        if await self.lease.stand_by(self._stop, self._redis_outage):
            self.metrics.lease.set(1)
            return True
        return False

    async def _become_active(self) -> None:
        self._keeper = asyncio.create_task(self._keep_lease())
        await until_done("broker (connect)", self.broker.connect, self._broker_outage)
        await self.relay.start()
        try:
            await self._recover()
            await self.relay.flush()
        except Incomplete:
            return  # stays up, not ready, until an operator acts; the alert says why
        except _Stopping:
            return  # fenced while catching up or relaying: main() exits with LEASE_LOST_EXIT
        heap.settle()  # the restored state is long-lived: later collections skip it
        await until_done("broker (start)", self.broker.start, self._broker_outage)
        self._probe = asyncio.create_task(self._watch())
        if self.shard.split:
            self._marker = asyncio.create_task(self._mark_when_idle())
        self._announce_ready()

    async def _shutdown(self) -> None:
        self._stopping = True
        for task in (getattr(self, "_keeper", None), getattr(self, "_probe", None), getattr(self, "_marker", None)):
            if task is not None:
                task.cancel()
        try:
            await asyncio.wait_for(self._lock.acquire(), timeout=self.settings.stop_grace_s)
        except asyncio.TimeoutError:
            log.warning("%s: the batch in hand did not finish in time; it will be delivered again", self.instance)
        try:
            await asyncio.wait_for(self.broker.stop(), timeout=5)
        except Exception as exc:  # noqa: BLE001 - shutting down anyway
            log.warning("%s: broker did not close cleanly (%s)", self.instance, exc.__class__.__name__)
        try:
            await self.relay.stop()
        except Exception as exc:  # noqa: BLE001 - shutting down anyway
            log.warning("%s: the relay's producer did not close cleanly (%s)", self.instance, exc.__class__.__name__)
        try:
            await asyncio.wait_for(self.lease.release(), timeout=2)
            await self.redis.aclose()
        except Exception:  # noqa: BLE001 - Redis may be the thing that is down
            pass
        self.metrics.lease.set(0)
        log.info("%s: stopped", self.instance)

    def _lost_lease(self, why: str) -> None:
        log.critical("%s: lost the lease (%s); stopping so a standby can take over", self.instance, why)
        self.lease.value = None
        self.metrics.lease.set(0)
        self.exit_code = LEASE_LOST_EXIT
        self._stop.set()
        raise _Stopping(why)

    async def _keep_lease(self) -> None:
        await self.lease.keep(self._redis_outage, self._recover_later)
        try:
            self._lost_lease("another instance holds it")
        except _Stopping:
            pass

    def _recover_later(self) -> None:
        self._lease_returned = True

    async def _watch(self) -> None:
        """Readiness: ping Redis and the broker every two seconds."""
        while True:
            await asyncio.sleep(2)
            try:
                await asyncio.wait_for(self.redis.ping(), 2)
                self._redis_outage(False)
            except Exception:  # noqa: BLE001
                self._redis_outage(True)
            try:
                self._broker_outage(not await self.broker.ping(2))
            except Exception:  # noqa: BLE001
                self._broker_outage(True)

    def _redis_outage(self, down: bool) -> None:
        self.up["redis"] = not down

    def _broker_outage(self, down: bool) -> None:
        self.up["broker"] = not down

    def checks(self) -> dict[str, bool]:
        return {"lease": self.lease.held, "state": self.loaded and not self.incomplete,
                "redis": self.up["redis"], "broker": self.up["broker"]}

    def role(self) -> str:
        return "active" if self.lease.held else "standby"

    def _announce_ready(self) -> None:
        if self.settings.ready_file:
            Path(self.settings.ready_file).write_text("active\n")
        log.info("%s: active, consuming %s", self.instance, ", ".join(self.service.input_topics))

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    # ---- the loop ------------------------------------------------------------------------
    async def _consume(self, body: Any, msg: KafkaMessage) -> None:
        self._batches += 1  # seen by the idle shard's MARK (_mark_when_idle)
        raw = msg.raw_message
        records = list(raw) if isinstance(raw, tuple) else [raw]
        if self._stopping:
            raise _Stopping("stopping")
        async with self._lock:
            if self._stopping:
                raise _Stopping("stopping")
            try:
                if self.merged is None:
                    await self._process(records, replay=False)
                else:
                    await self.merged.take(records, msg, self._decide_live)
            except _Stopping:
                raise
            except Exception:
                # A fault of the runtime itself, not of a record: never a hot loop.
                log.exception("%s: batch failed; it will be delivered again", self.instance)
                await self._sleep(2)
                self._must_recover = True
                raise
        faults.point("after_publish")

    async def _decide_live(self, records: list[ConsumerRecord], mark: bool = False) -> None:
        await self._process(records, replay=False, mark=mark)
        self._unmarked = not mark

    async def _mark_when_idle(self) -> None:
        """A shard with nothing to read writes a MARK (shared/shards.py) unless its last batch
        ended with one: at the start, and after a batch that left some input unread. Only once it
        was seen idle twice a poll apart with no batch taken and no record fetched in between:
        records a fetch has returned and the handler not yet taken must not be passed over."""
        before = None
        while True:
            await asyncio.sleep(MARK_POLL_S)
            consumer = self.subscriber.consumer
            if not self._unmarked or self._lock.locked() or consumer is None or not await self.merged.idle(consumer):
                before = None
                continue
            now = (self._batches, await self.merged.positions(consumer))
            if now != before:
                before = now
                continue
            async with self._lock:
                if self._stopping:
                    return
                if self._batches != before[0] or not self._unmarked:
                    before = None
                    continue
                try:
                    await self._decide_live([], mark=True)
                except _Stopping:
                    return
                except Exception:  # noqa: BLE001 - the runtime's own fault: tried again later
                    log.exception("%s: writing the shard's mark failed", self.instance)
                    self._must_recover = True


def serve(build: Callable[[], Runner]) -> None:
    """A service's process: logging, the runner from its composition root, the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    check_production(Settings.from_env())  # refuses development keys and plaintext transport
    heap.tune()
    runner = build()
    raise SystemExit(asyncio.run(runner.main()))
