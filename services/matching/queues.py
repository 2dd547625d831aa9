"""Sorted queues of ready returns and ready seats, kept in rule order as things change.

Each queue is a sorted list of (order key, item) with an id -> key map, so adding, removing
or re-keying one entry is a binary search plus a list insert (a memmove: cheap next to
anything Python does per item), and a matching pass reads only the head of each queue
instead of sorting the whole backlog on every event.
"""
from __future__ import annotations

from bisect import bisect_left, insort
from typing import Generic, Hashable, Iterator, TypeVar

from services.matching import rules

T = TypeVar("T")


class SortedQueue(Generic[T]):
    def __init__(self) -> None:
        self._entries: list[tuple[tuple, T]] = []
        self._keys: dict[Hashable, tuple] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, ident: Hashable) -> bool:
        return ident in self._keys

    def put(self, ident: Hashable, order: tuple, item: T) -> None:
        """Add, or move to its new place; the order key must end in something unique."""
        if self._keys.get(ident) == order:
            return
        self.remove(ident)
        self._keys[ident] = order
        insort(self._entries, (order, item), key=lambda e: e[0])

    def remove(self, ident: Hashable) -> None:
        order = self._keys.pop(ident, None)
        if order is None:
            return
        i = bisect_left(self._entries, order, key=lambda e: e[0])
        assert self._entries[i][0] == order, "queue index out of step"
        del self._entries[i]

    def __iter__(self) -> Iterator[T]:
        """In rule order, read lazily: decide first, then change the queue."""
        return (item for _, item in self._entries)


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
