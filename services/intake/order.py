"""An inbound record's place in the event-time merge (shared/merge.py): its `occurred_at`
(shared/event_time.py).

A record this cannot read, or whose time is implausibly far ahead (intake's own guard, which
dead-letters it), goes first: it decides nothing, and a time in year 9999 must not hold every
later record of its partition back.
"""
from __future__ import annotations

from shared.event_time import FIRST, occurred_seconds
from shared.limits import FUTURE_TOLERANCE, MAX_VALUE_BYTES

_AHEAD = FUTURE_TOLERANCE.total_seconds()


def event_time_of(value: bytes | None, received_at: float) -> float:
    """Seconds since the epoch of the value's `occurred_at`; FIRST when it has none to trust."""
    if not value or len(value) > MAX_VALUE_BYTES:
        return FIRST
    seconds = occurred_seconds(value)
    return FIRST if seconds > received_at + _AHEAD else seconds
