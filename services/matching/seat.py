"""The admission side: a seat (one application) and a family group (k seats admitted together)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Callable, ClassVar, Iterable

from services.matching import rules
from services.matching.model import Record

TAKEN = ("paired", "offered", "arrived")
DROPPED = ("withdrawn", "refused")


@dataclass
class Seat(Record):
    datetimes: ClassVar = ("submitted_at",)
    dates: ClassVar = ("date_of_birth",)

    application_id: str
    family_group_ref: str | None
    nationality: str
    date_of_birth: date
    located_in_france_verified: bool
    submitted_at: datetime
    family_group_size: int | None = None
    vetting: str | None = None  # clear | refused
    refusals: list[str] = field(default_factory=list)
    status: str = "waiting"  # waiting | paired | offered | arrived | refused | withdrawn
    request_id: str | None = None  # the pair this seat sits in
    head: bool = False
    last_reasons: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.status == "waiting" and self.vetting == "clear" and not self.refusals

    @property
    def over(self) -> bool:
        return self.status in DROPPED or self.status in ("offered", "arrived")

    def take(self, request_id: str) -> None:
        assert self.ready, "only a ready seat is paired"
        self.status, self.request_id, self.head = "paired", request_id, False

    def back_to_head(self) -> None:
        """Its pair broke on the return side: the seat waits again, first in line."""
        self.status, self.request_id, self.head = "waiting", None, True

    def drop(self, status: str, reasons: list[str]) -> str | None:
        """Withdrawn or refused; returns the request it sat in, if any."""
        request_id = self.request_id if self.status == "paired" else None
        self.status, self.refusals, self.request_id, self.head = status, list(reasons), None, False
        return request_id

    def offer(self) -> None:
        self.status = "offered"


class FamilyGroup:
    """The seats with one `family_group_ref`, in application order. Not a record of its own:
    the repository rebuilds it from its seats."""

    def __init__(self, ref: str):
        self.ref = ref
        self.members: list[str] = []

    def add(self, application_id: str, key: Callable[[str], tuple]) -> None:
        if application_id not in self.members:
            self.members.append(application_id)
            self.members.sort(key=key)

    def declared_size(self, seats: Iterable[Seat]) -> int | None:
        sizes = [s.family_group_size for s in seats if s.family_group_size]
        return max(sizes) if sizes else None

    def units(self, seats: list[Seat], priority: frozenset[str]) -> list[rules.Unit]:
        """The group's ready seats as units of the seat queue.

        Whole or not at all: one unit of all members once the group is complete. A member who
        lost its return after the group was admitted re-pairs on its own.
        """
        live = [s for s in seats if s.status != "withdrawn"]
        ready = [s for s in live if s.ready]
        if not ready:
            return []
        if any(s.status in TAKEN for s in live):
            return [rules.Unit((s.application_id,), s.nationality in priority, s.submitted_at, s.head, self.ref)
                    for s in ready]
        if any(s.status == "refused" for s in live):
            return []
        if not rules.family_complete(self.declared_size(seats), len(ready), len(live)):
            return []
        if self.declared_size(seats) is not None:
            ready = ready[: self.declared_size(seats)]
        return [rules.Unit(tuple(s.application_id for s in ready), any(s.nationality in priority for s in ready),
                           min(s.submitted_at for s in ready), any(s.head for s in ready), self.ref)]

    def complete(self, seats: list[Seat]) -> bool:
        live = [s for s in seats if s.status != "withdrawn"]
        return rules.family_complete(self.declared_size(seats), sum(1 for s in live if s.ready), len(live))
