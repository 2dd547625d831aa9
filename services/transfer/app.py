"""Transfer wiring: matching's instructions in -> the French liaison topics and the audit out.

State: the request register, "request:<request_id>" and "offer:<application_id>" records
(see rules.py); nothing else is needed, every time it publishes comes with the instruction.
"""
from __future__ import annotations

import logging

from aiokafka import ConsumerRecord
from pydantic import ValidationError

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

    def __init__(self) -> None:
        self.register: dict[str, dict] = {}

    def restore(self, snapshot: Snapshot) -> None:
        self.register = {k: v for k, v in snapshot.records.items()
                         if k.startswith(("request:", "offer:"))}

    def handle(self, rec: ConsumerRecord, ctx: BatchContext) -> None:
        try:
            instruction = Instruction.model_validate_json(rec.value or b"")
        except ValidationError as exc:
            # Matching wrote it, so this is our own bug; pydantic's text could quote particulars.
            log.error("unreadable instruction at %s: %d error(s)", _where(rec), exc.error_count())
            return
        if instruction.kind not in KINDS:
            return  # RecordBan is enforcement's
        key = rules.register_key(instruction)
        try:
            outcome = rules.decide(self.register.get(key) if key else None, instruction)
        except rules.BadInstruction as exc:
            log.error("instruction at %s not acted on: %s", _where(rec), exc)
            return
        if not ctx.first_time(instruction.instruction_id):
            return
        for p in outcome.publish:
            ctx.emit(p.topic, p.key, p.event)
        if outcome.record is not None:
            record_key, record = outcome.record
            self.register[record_key] = record
            ctx.changes.put(record_key, record)
        log.info("%s", outcome.note)


def _where(rec: ConsumerRecord) -> str:
    return f"{rec.topic}:{rec.partition}:{rec.offset}"


def build(settings: Settings | None = None) -> Runner:
    return Runner(Transfer(), settings or Settings.from_env())
