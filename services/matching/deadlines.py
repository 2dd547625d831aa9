"""The deadline schedule: (due, kind, id) entries, fired in that order.

Keyed by stable ids only, so a schedule rebuilt from the records after a restart fires the
same deadlines in the same order as the one that was running: due time, then kind, then id.
An entry whose subject has moved on is simply found stale when it fires.
"""
from __future__ import annotations

import heapq
from datetime import datetime
from typing import Iterator


class Deadlines:
    def __init__(self) -> None:
        self._heap: list[tuple[datetime, str, str]] = []
        self._set: set[tuple[datetime, str, str]] = set()

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, due: datetime, kind: str, ident: str) -> None:
        entry = (due, kind, ident)
        if entry not in self._set:
            self._set.add(entry)
            heapq.heappush(self._heap, entry)

    def due(self, now: datetime) -> Iterator[tuple[datetime, str, str]]:
        """Pop every entry due at or before now, oldest first (entries added while firing that
        are already due fire in the same pass)."""
        while self._heap and self._heap[0][0] <= now:
            entry = heapq.heappop(self._heap)
            self._set.discard(entry)
            yield entry
