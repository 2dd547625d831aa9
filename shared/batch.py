"""What a service sees of the runtime: the record it handles and the batch it decides into.

A `Service` keeps its state in memory, decides from each input record, and puts what it
decided into a `BatchContext`: records to store, events to publish. It does no I/O; the
runtime (`shared/runtime.py`) commits and publishes what the batch holds.
"""
from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from hashlib import sha256

import orjson
from aiokafka import ConsumerRecord

from shared.events.base import Event
from shared.state import Changes, Restoring, Snapshot, StoredRecords

JSON_HEADERS = {"content-type": "application/json"}
TRACEPARENT = "traceparent"


@dataclass(slots=True)
class Outgoing:
    topic: str
    key: str | None
    value: bytes
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON_HEADERS))


class BatchContext:
    """What one batch decided: state changes to commit and events to publish."""

    def __init__(self, seen, replay: bool = False, high: float = 0.0):
        self._seen = seen
        self.replay = replay
        self.changes = Changes()
        self.out: list[Outgoing] = []
        self._new_seen: set[str] = set()
        self.high = high  # the duplicate filter's clock: the latest event time seen, in seconds
        self.trace: str | None = None  # the W3C traceparent of what the record in hand causes

    def first_time(self, event_id: str, when: datetime | None = None) -> bool:
        """True once per event id within the duplicate filter's horizon (and records it)."""
        if when is not None:
            at = when.timestamp()
            if at > self.high:
                self.high = at
        if event_id in self._seen or event_id in self._new_seen:
            return False
        self._new_seen.add(event_id)
        self.changes.seen.append(event_id)
        if when is not None:
            # remembered by its own event time: a chronological replay keeps only the horizon
            self.changes.seen_at[event_id] = at
        return True

    def emit(self, topic: str, key: str | None, event: Event | bytes) -> None:
        value = event if isinstance(event, bytes) else event.to_json()
        headers = {**JSON_HEADERS, TRACEPARENT: self.trace} if self.trace else dict(JSON_HEADERS)
        self.out.append(Outgoing(topic, key, value, headers))


class Service(ABC):
    """A service's decisions over its in-memory state; no I/O here."""

    name: str
    input_topics: tuple[str, ...]
    # inputs with a retention period: their oldest records expire by design, so a rebuild
    # starts from the oldest one left instead of reporting the log incomplete
    expiring_topics: tuple[str, ...] = ()
    output_topics: tuple[str, ...] = ()  # besides the dead letters and alerts every service may publish
    # A service whose input partitions must be decided in event-time order (intake: the inbound
    # topics) names a record's event time here; the runner then merges them (shared/merge.py).
    # It must never raise: a record it cannot read goes first (it is dead-lettered anyway).
    order_key: Callable[[ConsumerRecord], float] | None = None
    # A service between an arrival and its first Decision (enforcement, matching) keeps its
    # hop short: the broker holds its fetches PROMPT_FETCH_MAX_WAIT_MS instead of
    # FETCH_MAX_WAIT_MS (shared/settings.py). A merged input (intake) keeps the usual waits: its
    # fetch names many partitions, and short holds would cost the broker dearly.
    prompt: bool = False
    # A service that can run in shards (intake, enforcement: shared/shards.py) names the setting
    # that counts them, the output each shard writes to a partition of its own (and a MARK after
    # it when caught up), and whether each shard reads every input partition and keeps what is
    # its own (enforcement, by person) rather than its share of the partitions (intake).
    shards_setting: str | None = None
    sharded_output: str | None = None
    reads_every_partition: bool = False
    # Inputs written by shards: their partitions are merged (order_key), and one counts as
    # caught up only while the last record read there is a shard's MARK.
    marked_inputs: tuple[str, ...] = ()

    @abstractmethod
    def restore(self, snapshot: Snapshot) -> None:
        """Replace the in-memory state with what Redis holds."""

    def restoring(self) -> Restoring:
        """The state rebuilt from its stored records as they are read (shared/state.Restoring).
        By default they are gathered and `restore` takes them at once; a service whose state
        is large rebuilds it chunk by chunk instead."""
        return _Gathered(self)

    @abstractmethod
    def handle(self, record: ConsumerRecord, ctx: BatchContext) -> None:
        """Decide on one input record. Raising dead-letters the record (processing_error)."""

    def finish(self, ctx: BatchContext) -> None:
        """Once per batch decided, after its last record and before the commit: put the records
        only the batch's end state matters for (the service's clock), once instead of per event.
        A batch decided again (after a poison record, from a reloaded state) is finished again."""


class _Gathered:
    """Every chunk kept as Redis gave it, then `restore` of the whole."""

    def __init__(self, service: Service):
        self._service = service
        self._records = StoredRecords({})

    def add(self, records: StoredRecords) -> None:
        self._records.take(records)

    def finish(self, snapshot: Snapshot) -> None:
        self._service.restore(replace(snapshot, records=self._records))


# The relay reads an outbox entry back with json.loads: either encoder's output reads the same.
_OUTBOX_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def encode_outbox(out: list[Outgoing]) -> bytes:
    """One outbox entry: [[topic, key, value as text, traceparent], ...]. orjson writes it; what
    orjson refuses (a lone surrogate in a key) goes through json, which refuses it as before."""
    entry = [[o.topic, o.key, o.value.decode("utf-8"), o.headers.get(TRACEPARENT)] for o in out]
    try:
        return orjson.dumps(entry)
    except TypeError:  # orjson.JSONEncodeError
        return _OUTBOX_JSON(entry).encode("utf-8")


# A producer's traceparent whose trace id we continue: four fields split on "-", the second 32
# lowercase hex digits (not all zero). On the raw header bytes: a non-ASCII byte is neither "-"
# nor a hex digit, as the U+FFFD that decoding it with "replace" gave.
_TRACEPARENT = re.compile(rb"[^-]*-([0-9a-f]{32})-[^-]*-[^-]*")
_NO_TRACE = b"0" * 32


def trace_of(rec: ConsumerRecord, place: str) -> str:
    """The W3C trace context that travels with what a record causes, so one arrival can be
    followed across the four services: the record's own trace continued, with this service's
    hop as the parent span, or a new trace when the producer sent none. Derived from the
    record's place in the log, so a batch decided again publishes the same headers."""
    digest = sha256(place.encode()).hexdigest()
    for k, v in rec.headers or ():
        if k == TRACEPARENT:
            if v:  # the first traceparent header decides, valid or not
                found = _TRACEPARENT.fullmatch(v)
                if found is not None and found[1] != _NO_TRACE:
                    return f"00-{found[1].decode()}-{digest[:16]}-01"
            break
    return f"00-{digest[16:48]}-{digest[:16]}-01"
