"""Talk to the house only through the wire contract, as its outside parties do.

`ContractClient` is every inbound producer at once: it signs each value with the keyring key
allowed on the topic, exactly as Border Force terminals or the French liaison system would.
`Observer` is every outbound consumer at once: it reads all outbound contract topics from the
beginning, without a consumer group (so it never competes with, or is delayed by, anyone's
group rebalance), and lets a test wait for what the system published.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared import topics as T
from shared.signing import Keyring, signed_headers

OUTBOUND_TOPICS: tuple[str, ...] = (
    T.LIAISON_UK_RETURN_REQUESTS, T.LIAISON_UK_ADMISSION_NOTICES, T.ENFORCEMENT_BANS,
    T.OPS_BALANCE, T.OPS_ALERTS, T.OPS_AUDIT, T.OPS_DEAD_LETTERS,
)

# The contract's message key per inbound topic: the first of these fields the event has.
KEY_FIELDS: dict[str, tuple[str, ...]] = {
    T.BORDER_ARRIVALS: ("arrival_id",),
    T.CASEWORK_UPDATES: ("arrival_id",),
    T.ADMISSIONS_APPLICATIONS: ("application_id",),
    T.LIAISON_FR_DECISIONS: ("request_id",),
    T.TRANSFERS_MOVEMENTS: ("request_id", "application_id"),
    T.ENFORCEMENT_ILLEGAL_WORKING: ("report_id",),
    T.OPS_CONTROL: ("week", "event_type"),  # "subject": the week a cap is for, else the kind
}


def encode(event: Mapping[str, Any]) -> bytes:
    """Compact JSON, UTF-8: the exact bytes that get signed and sent."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def make_event(event_type: str, occurred_at: datetime | str, *, producer: str = "tests",
               event_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """An event with the four common fields filled in (a fresh UUID unless one is given)."""
    when = occurred_at.isoformat() if isinstance(occurred_at, datetime) else occurred_at
    return {"event_id": event_id or str(uuid.uuid4()), "event_type": event_type,
            "occurred_at": when, "producer": producer, **fields}


def default_key(topic: str, event: Mapping[str, Any] | None) -> str | None:
    for name in KEY_FIELDS.get(topic, ()):
        if event is not None and event.get(name) is not None:
            return str(event[name])
    return None


class ContractClient:
    """Publishes inbound events. acks=all, idempotence off (Tansu refuses InitProducerId)."""

    def __init__(self, bootstrap: str, keyring: Keyring):
        self.bootstrap = bootstrap
        self.keyring = keyring
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> "ContractClient":
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                          enable_idempotence=False, linger_ms=0)
        await self._producer.start()
        return self

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def __aenter__(self) -> "ContractClient":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def publish(self, topic: str, event: Mapping[str, Any] | None = None, key: str | None = None,
                      sign: bool = True, raw: bytes | None = None,
                      headers: Mapping[str, str | bytes] | None = None):
        """Send one record and wait for the broker's ack; returns its RecordMetadata.

        `raw` replaces the encoded event as the value (still signed unless sign=False), for
        bad-input tests. `key` defaults to the contract's key field for the topic. `headers`
        are applied last, so they can replace x-key-id or x-signature.
        """
        assert self._producer is not None, "ContractClient not started"
        value = raw if raw is not None else encode(event or {})
        if key is None and raw is None:
            key = default_key(topic, event)
        hdrs: dict[str, str | bytes] = {"content-type": "application/json"}
        if sign:
            hdrs.update(signed_headers(self.keyring.key_for_topic(topic), value))
        hdrs.update(headers or {})
        kafka_headers = [(k, v if isinstance(v, bytes) else v.encode("utf-8")) for k, v in hdrs.items()]
        return await self._producer.send_and_wait(
            topic, value, key=key.encode("utf-8") if key is not None else None, headers=kafka_headers)


class SeenEvent(dict):
    """A published event as a plain dict of its fields, plus where it was found."""

    def __init__(self, fields: Mapping[str, Any], *, topic: str, key: str | None, partition: int,
                 offset: int, headers: dict[str, bytes], raw: bytes):
        super().__init__(fields)
        self.topic, self.key, self.partition, self.offset = topic, key, partition, offset
        self.headers, self.raw = headers, raw

    def __repr__(self) -> str:
        return f"<{self.topic}[{self.partition}]@{self.offset} key={self.key!r} {dict.__repr__(self)}>"


Predicate = Callable[[SeenEvent], bool]


class Observer:
    """Reads outbound topics from the beginning, keeps everything, answers `wait_for`."""

    def __init__(self, bootstrap: str, topics: Iterable[str] = OUTBOUND_TOPICS,
                 specs: Iterable[T.TopicSpec] = T.TOPICS):
        self.bootstrap = bootstrap
        self.topics = tuple(topics)
        self.partitions = {s.name: s.partitions for s in specs}  # a stack with shards has more (T.catalogue)
        self.seen: list[SeenEvent] = []
        self._changed = asyncio.Condition()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task | None = None
        self._error: BaseException | None = None

    async def start(self) -> "Observer":
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=100)
        await self._consumer.start()
        # Partition counts from the catalogue: the stack created and verified them, and asking
        # the broker about a topic it lacks would make Tansu auto-create it.
        tps = [TopicPartition(t, p) for t in self.topics for p in range(self.partitions[t])]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._run(), name="observer")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def __aenter__(self) -> "Observer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def _run(self) -> None:
        try:
            while True:
                batch = await self._consumer.getmany(timeout_ms=200)
                if not batch:
                    continue
                for records in batch.values():
                    for rec in records:
                        self.seen.append(_parse(rec))
                async with self._changed:
                    self._changed.notify_all()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # surfaced by wait_for instead of a silent timeout
            self._error = exc
            async with self._changed:
                self._changed.notify_all()

    # ---- queries ---------------------------------------------------------------------------
    def events(self, topic: str | None = None, event_type: str | None = None, **fields: Any) -> list[SeenEvent]:
        match = _matcher(None, topic, event_type, fields)
        return [e for e in self.seen if match(e)]

    async def wait_for(self, what: Predicate | str | None = None, event_type: str | None = None, *,
                       count: int = 1, timeout: float = 30.0, topic: str | None = None,
                       **fields: Any) -> list[SeenEvent]:
        """Wait until at least `count` seen events match; return all that match by then.

        `what` is a predicate or a topic name; `event_type` and `fields` (equality on event
        fields) narrow it further. Raises AssertionError with a summary of what was seen.
        """
        if isinstance(what, str):
            topic, what = what, None
        match = _matcher(what, topic, event_type, fields)
        found: list[SeenEvent] = []
        checked = 0
        deadline = time.monotonic() + timeout

        def enough() -> bool:
            nonlocal checked
            found.extend(e for e in self.seen[checked:] if match(e))
            checked = len(self.seen)
            return len(found) >= count or self._error is not None

        async with self._changed:
            while not enough():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except asyncio.TimeoutError:
                    pass
        if self._error is not None:
            raise AssertionError(f"observer stopped reading: {self._error!r}") from self._error
        if len(found) < count:
            wanted = _describe(what, topic, event_type, fields)
            raise AssertionError(f"waited {timeout}s for {count} x {wanted}, found {len(found)}.\n"
                                 + self.summary(topic))
        return found

    async def quiet(self, period: float = 1.0, timeout: float = 30.0) -> None:
        """Wait until nothing new has arrived for `period` seconds (for "publishes nothing")."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = len(self.seen)
            await asyncio.sleep(period)
            if len(self.seen) == before:
                return
        raise AssertionError(f"still receiving events after {timeout}s")

    def summary(self, topic: str | None = None, last: int = 15) -> str:
        counts = Counter((e.topic, e.get("event_type")) for e in self.seen)
        lines = ["seen so far:"] + [f"  {n:4} {t} {et}" for (t, et), n in sorted(counts.items())]
        if not counts:
            lines.append("  nothing on " + ", ".join(self.topics))
        tail = [e for e in self.seen if topic is None or e.topic == topic][-last:]
        if tail:
            lines.append(f"last {len(tail)}{' on ' + topic if topic else ''}:")
            lines += [f"  {e!r}"[:400] for e in tail]
        return "\n".join(lines)


def _parse(rec) -> SeenEvent:
    raw = rec.value or b""
    try:
        fields = json.loads(raw)
        if not isinstance(fields, dict):
            fields = {"_unparsed": fields}
    except ValueError:
        fields = {"_unparsed": raw.decode("utf-8", "replace")}
    key = rec.key.decode("utf-8", "replace") if rec.key is not None else None
    return SeenEvent(fields, topic=rec.topic, key=key, partition=rec.partition, offset=rec.offset,
                     headers={k: v for k, v in (rec.headers or ())}, raw=raw)


def _matcher(pred: Predicate | None, topic: str | None, event_type: str | None,
             fields: Mapping[str, Any]) -> Predicate:
    def match(e: SeenEvent) -> bool:
        return ((topic is None or e.topic == topic)
                and (event_type is None or e.get("event_type") == event_type)
                and all(e.get(k, _MISSING) == v for k, v in fields.items())
                and (pred is None or bool(pred(e))))
    return match


_MISSING = object()


def _describe(pred, topic, event_type, fields) -> str:
    parts = [p for p in (topic, event_type) if p]
    parts += [f"{k}={v!r}" for k, v in fields.items()]
    if pred is not None:
        parts.append(getattr(pred, "__name__", "predicate"))
    return " ".join(parts) or "any event"
