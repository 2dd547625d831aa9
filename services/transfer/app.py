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
from shared.events.internal import Instruction
from shared.runtime import BatchContext, Runner, Service
from shared.settings import Settings
from shared.store import Snapshot

log = logging.getLogger("oioo.transfer")
KINDS = ("RequestReturn", "WithdrawReturn", "OfferAdmission")


class Transfer(Service):
    name = "transfer"
    input_topics = (topics.MATCHING_INSTRUCTIONS,)
    output_topics = (topics.LIAISON_UK_RETURN_REQUESTS, topics.LIAISON_UK_ADMISSION_NOTICES, topics.OPS_AUDIT)

    def __init__(self) -> None:
        self.register: dict[str, dict] = {}

    def restore(self, snapshot: Snapshot) -> None:
        self.register = {k: v for k, v in snapshot.records.items()
                         if k.startswith(("request:", "offer:"))}

    def handle(self, rec: ConsumerRecord, ctx: BatchContext) -> None:
        # Matching wrote it, so an unreadable or unactionable instruction is our own bug:
        # raising dead-letters it (processing_error) without quoting the particulars.
        instruction = Instruction.model_validate_json(rec.value or b"")
        if instruction.kind not in KINDS:
            return  # RecordBan is enforcement's
        key = rules.register_key(instruction)
        outcome = rules.decide(self.register.get(key) if key else None, instruction)
        if not ctx.first_time(instruction.instruction_id, datetime.fromisoformat(instruction.occurred_at)):
            return
        for p in outcome.publish:
            ctx.emit(p.topic, p.key, p.event)
        if outcome.record is not None:
            record_key, record = outcome.record
            self.register[record_key] = record
            ctx.changes.put(record_key, record)
        log.info("%s", outcome.note)


def build(settings: Settings | None = None) -> Runner:
    return Runner(Transfer(), settings or Settings.from_env())
