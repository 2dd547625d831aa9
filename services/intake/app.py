"""Intake wiring: every inbound contract topic in, accepted events or dead letters out."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from aiokafka import ConsumerRecord

from services.intake.order import event_time_of
from services.intake.rules import Accepted, screen, split_particulars
from shared import topics
from shared.events.inbound import subject_of
from shared.events.internal import accepted_json
from shared.dead_letters import dead_letter
from shared.runtime import BatchContext, Runner, Service
from shared.settings import Settings
from shared.signing import Keyring
from shared.state import Snapshot

log = logging.getLogger("oioo.intake")
PRODUCER = "oioo-intake"
MAX_KEY_BYTES = 1024


class Intake(Service):
    name = "intake"
    input_topics = topics.INBOUND_TOPICS
    output_topics = (topics.INTAKE_ACCEPTED, topics.INTAKE_PARTICULARS, topics.OPS_DEAD_LETTERS, topics.OPS_ALERTS)
    # intake can run in shards, each its share of the partitions (shared/shards.py)
    shards_setting = "intake_shards"
    sharded_output = topics.INTAKE_ACCEPTED

    def __init__(self, keyring: Keyring):
        self.keyring = keyring
        self.now: datetime | None = None
        self._clock_moved = False  # since the last batch finished: "meta" is put once, by finish

    def restore(self, snapshot: Snapshot) -> None:
        meta = snapshot.records.get("meta", {})
        self.now = datetime.fromisoformat(meta["now"]) if meta.get("now") else None
        self._clock_moved = False

    def handle(self, rec: ConsumerRecord, ctx: BatchContext) -> None:
        headers = {k: v for k, v in (rec.headers or ())}
        # The one wall clock in the house, read here and nowhere else: the contract's
        # `implausible_time` guard compares an event's own time with ours at receipt, so no
        # producer can move the system's clock ahead. The record's broker timestamp cannot
        # stand in for it: the producer sets it, so it is no witness. (A rebuild replays with
        # a later clock: what was accepted stays accepted.)
        received_at = datetime.now(timezone.utc)
        result = screen(self.keyring, rec.topic, headers, rec.value, received_at=received_at)
        if not isinstance(result, Accepted):
            self._dead_letter(rec, result.error_code, result.error_detail, ctx)
            return
        event = result.event
        if not ctx.first_time(str(event.event_id), event.occurred_at):
            log.debug("duplicate event dropped on %s", rec.topic)
            return
        if self.now is None or event.occurred_at > self.now:
            self.now = event.occurred_at
            self._clock_moved = True
        particulars, document = split_particulars(event, result.document)
        if particulars is not None:
            ctx.emit(topics.INTAKE_PARTICULARS, event.arrival_id, particulars)
        # Keyed by what the body says it is about: the producer's key may disagree with it.
        ctx.emit(topics.INTAKE_ACCEPTED, subject_of(event),
                 accepted_json(rec.topic, rec.partition, rec.offset, document))

    def order_key(self, rec: ConsumerRecord) -> float:
        """The inbound partitions are decided in event-time order (shared/merge.py). The wall
        clock only keeps an implausible time, which screen() dead-letters, from holding others."""
        return event_time_of(rec.value, time.time())

    def finish(self, ctx: BatchContext) -> None:
        if self._clock_moved:
            ctx.changes.put("meta", {"now": self.now.isoformat()})
            self._clock_moved = False

    def _dead_letter(self, rec: ConsumerRecord, code: str, detail: str, ctx: BatchContext) -> None:
        letter, alert = dead_letter(topic=rec.topic, partition=rec.partition, offset=rec.offset, raw=rec.value,
                                    code=code, detail=detail, when=self.now, producer=PRODUCER)
        # The original key, cut: only the value has a limit, and a dead letter must still fit.
        key = rec.key[:MAX_KEY_BYTES].decode("utf-8", "replace") if rec.key else None
        ctx.emit(topics.OPS_DEAD_LETTERS, key, letter)
        ctx.emit(topics.OPS_ALERTS, alert.subject_ref, alert)
        log.warning("dead letter %s at %s", code, alert.subject_ref)


def build(settings: Settings | None = None) -> Runner:
    settings = settings or Settings.from_env()
    if not settings.signing_keys_file:
        raise SystemExit("SIGNING_KEYS_FILE is not set: intake cannot verify inbound events without the keyring")
    return Runner(Intake(Keyring.from_file(settings.signing_keys_file)), settings)
