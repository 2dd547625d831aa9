"""Transfer wiring: matching's instructions in -> the French liaison topics and the audit out.

State: the request register, "request:<request_id>" and "offer:<application_id>" records
(see rules.py); nothing else is needed, every time it publishes comes with the instruction.
"""
from __future__ import annotations

import logging
from datetime import datetime

from aiokafka import ConsumerRecord

from services.transfer import rules
from shared import topics
from services.transfer.particulars import KEY, WAITING, ParticularsBook
from shared.events.internal import ArrivalParticulars, Instruction
from shared.runtime import BatchContext, Runner, Service
from shared.settings import Settings
from shared.state import Snapshot

log = logging.getLogger("oioo.transfer")
KINDS = ("RequestReturn", "WithdrawReturn", "OfferAdmission")
DAY_BEGAN = "DayBegan"  # matching's clock moved into a new day: particulars past retention go


class Transfer(Service):
    name = "transfer"
    input_topics = (topics.MATCHING_INSTRUCTIONS, topics.INTAKE_PARTICULARS)
    expiring_topics = (topics.INTAKE_PARTICULARS,)
    output_topics = (topics.LIAISON_UK_RETURN_REQUESTS, topics.LIAISON_UK_ADMISSION_NOTICES, topics.OPS_AUDIT)

    def __init__(self, retention_days: int = topics.PERSONAL_DATA_RETENTION_DAYS) -> None:
        self.register: dict[str, dict] = {}
        self.book = ParticularsBook(retention_days)
        self.now: datetime | None = None
        self._clock_moved = False  # since the last batch finished: "meta" is put once, by finish

    def restore(self, snapshot: Snapshot) -> None:
        self.register = {k: v for k, v in snapshot.records.items()
                         if k.startswith(("request:", "offer:"))}
        self.book.restore(snapshot.records)
        now = snapshot.records.get("meta", {}).get("now")
        self.now = datetime.fromisoformat(now) if now else None
        self._clock_moved = False

    def handle(self, rec: ConsumerRecord, ctx: BatchContext) -> None:
        # Intake and matching wrote these, so an unreadable or unactionable one is our own bug:
        # raising dead-letters it (processing_error) without quoting the particulars.
        if rec.topic == topics.INTAKE_PARTICULARS:
            particulars = ArrivalParticulars.model_validate_json(rec.value or b"")
            # Particulars do not move the clock that forgets particulars: matching's does
            # (instructions, DayBegan). In a backlog or a replay intake's particulars run weeks
            # ahead of the pairs that need them, and would have forgotten them first. One already
            # past its retention at its own time is not kept at all.
            own = datetime.fromisoformat(particulars.occurred_at)
            kept = self.book.keep(particulars, max(own, self.now or own))
            if kept is not None:
                ctx.changes.put(*kept)
                waiting = self.book.release(particulars.arrival_id)
                if waiting:
                    ctx.changes.delete(WAITING + particulars.arrival_id)
                for instruction in waiting:
                    self._act(instruction, ctx)
            return
        instruction = Instruction.model_validate_json(rec.value or b"")
        if instruction.kind == DAY_BEGAN:
            self._advance(datetime.fromisoformat(instruction.occurred_at), ctx)
            return
        if instruction.kind not in KINDS:
            return  # RecordBan is enforcement's
        if not ctx.first_time(instruction.instruction_id, datetime.fromisoformat(instruction.occurred_at)):
            return
        self._advance(datetime.fromisoformat(instruction.occurred_at), ctx)
        if instruction.kind == "RequestReturn":
            rules.check_request(instruction)  # a bad one is dead-lettered, not kept waiting
        if (instruction.kind == "RequestReturn" and not ctx.replay
                and self.book.of(instruction.arrival_id) is None):
            ctx.changes.put(*self.book.wait(instruction))
            log.info("request %s waits for the arrival's particulars", instruction.request_id)
            return
        self._act(instruction, ctx)

    def _act(self, instruction: Instruction, ctx: BatchContext) -> None:
        key = rules.register_key(instruction)
        particulars = self.book.of(instruction.arrival_id) if instruction.arrival_id else None
        outcome = rules.decide(self.register.get(key) if key else None, instruction, particulars)
        for p in outcome.publish:
            ctx.emit(p.topic, p.key, p.event)
        if outcome.record is not None:
            record_key, record = outcome.record
            self.register[record_key] = record
            ctx.changes.put(record_key, record)
        log.info("%s", outcome.note)

    def finish(self, ctx: BatchContext) -> None:
        if self._clock_moved:
            ctx.changes.put("meta", {"now": self.now.isoformat()})
            self._clock_moved = False

    def _advance(self, when: datetime, ctx: BatchContext) -> None:
        if self.now is not None and when <= self.now:
            return
        self.now = when
        self._clock_moved = True
        for arrival_id in self.book.expired(when):
            ctx.changes.delete(KEY + arrival_id)


def build(settings: Settings | None = None) -> Runner:
    settings = settings or Settings.from_env()
    return Runner(Transfer(settings.personal_data_retention_days), settings)
