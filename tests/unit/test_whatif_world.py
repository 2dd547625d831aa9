"""A small recorded history, made in process: the world's events in event-time order through the
matching service as the runtime runs it (`Wired`, one record per batch) and its instructions
through transfer (which has each arrival's particulars from intake first), reacting as France
and the escorts do (each request answered `accepted` a day later, executed two days later; each
offer's applicant arrives a day later).

What it keeps is what `oioo export-history` exports: matching's input as screened records,
intake's particulars for transfer, and what was published on ops.audit.v1 and the liaison.uk
topics.
"""
from __future__ import annotations

import heapq
import json
from datetime import datetime

from services.intake.rules import split_particulars
from services.ops.whatif_history import History, Logged
from services.transfer.app import Transfer
from shared import topics as T
from shared.events.inbound import ANY_INBOUND
from shared.events.internal import ScreenedEvent
from shared.runtime import BatchContext
from tests.support.factory import DAY, admission_arrived, answer, executed, tick
from tests.unit.harness import FakeRecord, Wired

KEPT = (T.OPS_AUDIT, T.LIAISON_UK_RETURN_REQUESTS, T.LIAISON_UK_ADMISSION_NOTICES)


class Recorder:
    def __init__(self, **settings):
        self.wired = Wired(**settings)
        self.transfer = Transfer()
        self.transfer_seen: set[str] = set()
        self.history = History()
        self.queue: list[tuple[datetime, int, dict]] = []
        self.n = 0
        self.offsets: dict[str, int] = {}

    def at(self, doc: dict) -> None:
        """Schedule an event of the world at its own time."""
        heapq.heappush(self.queue, (datetime.fromisoformat(doc["occurred_at"]), self.n, doc))
        self.n += 1

    def ticks(self, start: datetime, days: int) -> None:
        for d in range(days * 4):
            self.at(tick(start + d * DAY / 4))

    def run(self) -> History:
        while self.queue:
            _, _, doc = heapq.heappop(self.queue)
            self.send(doc)
        return self.history

    def send(self, doc: dict) -> None:
        w = self.wired
        particulars, document = split_particulars(ANY_INBOUND.validate_python(doc), doc)
        if particulars is not None:
            raw = particulars
            self.history.add(Logged(T.INTAKE_PARTICULARS, 0, len(self.history.particulars), doc["arrival_id"], raw))
            self.to_transfer(FakeRecord(raw, topic=T.INTAKE_PARTICULARS))
        screened = ScreenedEvent(source_topic="test", event=document, screening=w.screener.screen(doc))
        value = screened.model_dump_json().encode()
        self.history.add(Logged(T.ENFORCEMENT_SCREENED, 0, w.offset, doc.get("arrival_id"), value))
        ctx = BatchContext(w.seen)
        w.service.handle(FakeRecord(value, offset=w.offset), ctx)
        w.offset += 1
        w.seen.update(ctx.changes.seen)
        for o in ctx.out:
            self.publish(o.topic, o.key, o.value)
            if o.topic == T.MATCHING_INSTRUCTIONS:
                self.to_transfer(FakeRecord(o.value, topic=o.topic))

    def to_transfer(self, rec: FakeRecord) -> None:
        ctx = BatchContext(self.transfer_seen)
        self.transfer.handle(rec, ctx)
        self.transfer_seen.update(ctx.changes.seen)
        for t in ctx.out:
            self.publish(t.topic, t.key, t.value)

    def publish(self, topic: str, key: str | None, value: bytes) -> None:
        if topic not in KEPT:
            return
        n = self.offsets.get(topic, 0)
        self.offsets[topic] = n + 1
        self.history.add(Logged(topic, 0, n, key, value))
        doc = json.loads(value)
        when = datetime.fromisoformat(doc["occurred_at"].replace("Z", "+00:00"))
        if doc["event_type"] == "ReturnRequested":
            self.at(answer(doc["request_id"], when + DAY))
            self.at(executed(doc["request_id"], when + 2 * DAY))
        elif doc["event_type"] == "AdmissionOffered":
            self.at(admission_arrived(doc["application_id"], when + DAY))
