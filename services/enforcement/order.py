"""The accepted events' place in enforcement's merge when intake runs in shards (shared/shards.py).

Each shard wrote its partition in its own merge order: by the inbound record's event time, then
its topic, partition and offset. Enforcement merges the shards' partitions by the same key, read
back from the accepted envelope (intake writes its source first), so the events come in the
order one intake would have given them. The instructions from matching, a MARK, or a value this
cannot read go first: they are not ordered by event time (an unreadable one is dead-lettered).
"""
from __future__ import annotations

import re

from aiokafka import ConsumerRecord

from shared import topics
from shared.event_time import FIRST, occurred_seconds

Order = tuple[float, str, int, int]
BEFORE_ALL: Order = (FIRST, "", -1, -1)
_SOURCE = re.compile(rb'\{"source_topic":"([A-Za-z0-9._\-]{1,249})","source_partition":(\d{1,9}),"source_offset":(\d{1,19}),')


def accepted_order(rec: ConsumerRecord) -> Order:
    if rec.topic != topics.INTAKE_ACCEPTED or not rec.value:
        return BEFORE_ALL
    source = _SOURCE.match(rec.value)
    if source is None:
        return BEFORE_ALL
    return (occurred_seconds(rec.value), source.group(1).decode("ascii"), int(source.group(2)), int(source.group(3)))
