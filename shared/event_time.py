"""A record's place in an event-time merge (shared/merge.py), read cheaply and without trusting
it: the first `"occurred_at": "..."` in its value, in seconds since the epoch.

Intake orders the inbound records by it, and enforcement orders the shards' accepted events by
it again (shared/shards.py); both read it here, so both put the same records in the same order.
"""
from __future__ import annotations

import math
import re
from datetime import datetime

_OCCURRED_AT = re.compile(rb'"occurred_at"\s*:\s*"([0-9T:.+\-Zz ]{10,40})"')
FIRST = -math.inf  # a record with no time to trust goes first: it decides nothing


def occurred_seconds(value: bytes) -> float:
    """Seconds since the epoch of the value's first `occurred_at`; FIRST when it has none, or
    one that is not an ISO time with its offset."""
    found = _OCCURRED_AT.search(value)
    if found is None:
        return FIRST
    try:
        when = datetime.fromisoformat(found.group(1).decode("ascii"))
    except ValueError:
        return FIRST
    if when.tzinfo is None:
        return FIRST  # the schema refuses it
    return when.timestamp()


Order = tuple[float, str, int, int]
BEFORE_ALL: Order = (FIRST, "", -1, -1)
# Our envelopes (accepted, screened) begin with where the event came in: the inbound topic,
# partition and offset, then the event with its time.
_SOURCE = re.compile(rb'\{"source_topic":"([A-Za-z0-9._\-]{1,249})","source_partition":(\d{1,9}),"source_offset":(\d{1,19}),')


def source_order(value: bytes | None) -> Order:
    """An in-house envelope's place in one intake's merge: its event's time, then the inbound
    topic, partition and offset it came from. BEFORE_ALL for a value without them (a MARK, or
    one that cannot be read: it is dead-lettered and decides nothing)."""
    if not value:
        return BEFORE_ALL
    source = _SOURCE.match(value)
    if source is None:
        return BEFORE_ALL
    return (occurred_seconds(value), source.group(1).decode("ascii"), int(source.group(2)), int(source.group(3)))
