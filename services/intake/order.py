"""An inbound record's place in the event-time merge (shared/merge.py): its `occurred_at`.

Read before the record is screened, so cheaply and without trusting it: the first
`"occurred_at": "..."` in the value. A record this cannot read, or whose time is implausibly far
ahead (intake's own guard, which dead-letters it), goes first: it decides nothing, and a time in
year 9999 must not hold every later record of its partition back.
"""
from __future__ import annotations

import math
import re
from datetime import datetime

from shared.limits import FUTURE_TOLERANCE, MAX_VALUE_BYTES

_OCCURRED_AT = re.compile(rb'"occurred_at"\s*:\s*"([0-9T:.+\-Zz ]{10,40})"')
_AHEAD = FUTURE_TOLERANCE.total_seconds()
FIRST = -math.inf


def event_time_of(value: bytes | None, received_at: float) -> float:
    """Seconds since the epoch of the value's `occurred_at`; FIRST when it has none to trust."""
    if not value or len(value) > MAX_VALUE_BYTES:
        return FIRST
    found = _OCCURRED_AT.search(value)
    if found is None:
        return FIRST
    try:
        when = datetime.fromisoformat(found.group(1).decode("ascii"))
    except ValueError:
        return FIRST
    if when.tzinfo is None:
        return FIRST  # the schema refuses it
    seconds = when.timestamp()
    return FIRST if seconds > received_at + _AHEAD else seconds
