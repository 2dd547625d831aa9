"""Sorted queues of ready returns and ready seats, kept in rule order as things change.

Each queue is a sorted list split into buckets of a bounded size (with each bucket's last
key), plus an id -> key map: adding, removing or re-keying one entry is two binary searches
and an insert into one small bucket, so an event costs O(log n) however long the backlog,
and a matching pass reads only the head of each queue.
"""
from __future__ import annotations

from bisect import bisect_left, insort
from typing import Generic, Hashable, Iterator, TypeVar

from services.matching import rules

T = TypeVar("T")
LOAD = 256  # a bucket splits at twice this


def _key(entry: tuple) -> tuple:
    return entry[0]


class SortedQueue(Generic[T]):
    def __init__(self) -> None:
        self._buckets: list[list[tuple[tuple, T]]] = []
        self._last: list[tuple] = []  # each bucket's greatest key
        self._keys: dict[Hashable, tuple] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, ident: Hashable) -> bool:
        return ident in self._keys

    def put(self, ident: Hashable, order: tuple, item: T) -> None:
        """Add, or move to its new place; the order key must end in something unique."""
        if self._keys.get(ident) == order:
            return
        self.remove(ident)
        self._keys[ident] = order
        entry = (order, item)
        if not self._buckets:
            self._buckets.append([entry])
            self._last.append(order)
            return
        i = bisect_left(self._last, order)
        if i == len(self._buckets):
            i -= 1
            self._buckets[i].append(entry)
            self._last[i] = order
        else:
            insort(self._buckets[i], entry, key=_key)
        bucket = self._buckets[i]
        if len(bucket) > 2 * LOAD:
            self._buckets[i:i + 1] = [bucket[:LOAD], bucket[LOAD:]]
            self._last[i:i + 1] = [bucket[LOAD - 1][0], bucket[-1][0]]

    def remove(self, ident: Hashable) -> None:
        order = self._keys.pop(ident, None)
        if order is None:
            return
        i = bisect_left(self._last, order)
        bucket = self._buckets[i]
        j = bisect_left(bucket, order, key=_key)
        assert bucket[j][0] == order, "queue index out of step"
        del bucket[j]
        if not bucket:
            del self._buckets[i], self._last[i]
        elif j == len(bucket):
            self._last[i] = bucket[-1][0]

    def __iter__(self) -> Iterator[T]:
        """In rule order, read lazily: decide first, then change the queue."""
        return (item for bucket in self._buckets for _, item in bucket)


class ReturnQueue(SortedQueue[rules.ReadyCase]):
    """Ready returns: "re-entrants first, then oldest landed_at\""""

    def put_case(self, case: rules.ReadyCase) -> None:
        self.put(case.arrival_id, case.order, case)


class SeatQueue(SortedQueue[rules.Unit]):
    """Ready seats as units (one applicant, or a complete family): "priority ... then oldest
    application", first fit. Units are grouped by their family (or single application), so a
    change to one member replaces that family's units at once."""

    def __init__(self) -> None:
        super().__init__()
        self._groups: dict[str, list[tuple[str, ...]]] = {}

    def set_group(self, group: str, units: list[rules.Unit]) -> None:
        for ids in self._groups.pop(group, []):
            self.remove(ids)
        for unit in units:
            self.put(unit.application_ids, unit.order, unit)
        if units:
            self._groups[group] = [u.application_ids for u in units]
