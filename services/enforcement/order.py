"""Enforcement's merge key when it reads shards (shared/shards.py): an accepted event's place in
one intake's order (shared/event_time.source_order); the instructions from matching go first."""
from __future__ import annotations

from aiokafka import ConsumerRecord

from shared import topics
from shared.event_time import BEFORE_ALL, Order, source_order


def accepted_order(rec: ConsumerRecord) -> Order:
    return source_order(rec.value) if rec.topic == topics.INTAKE_ACCEPTED else BEFORE_ALL
