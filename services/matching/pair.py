"""A pair: one case + one seat formed together under a week's cap; its request_id names it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from services.matching import rules
from services.matching.model import Record


@dataclass
class Pair(Record):
    datetimes: ClassVar = ("formed_at",)

    request_id: str
    arrival_id: str
    application_id: str | None
    week: str
    formed_at: datetime
    seq: int
    answer: str | None = None  # accepted | refused
    executed: bool = False
    broken: str | None = None  # why it broke: refused | lapsed | failed | withdrawn
    overdue_alerted: bool = False
    offered: bool = False

    @property
    def live(self) -> bool:
        return self.broken is None

    @property
    def open_request(self) -> bool:
        return self.broken is None and not self.executed

    @property
    def owes_seat(self) -> bool:
        """An executed return whose admission side dropped: its seat goes to the next applicant."""
        return self.live and self.executed and self.application_id is None

    @property
    def awaits_offer(self) -> bool:
        return self.live and self.executed and not self.offered and self.application_id is not None

    @property
    def over(self) -> bool:
        """Nothing more can happen to it: broken, or executed and offered."""
        return self.broken is not None or (self.executed and self.offered)

    def ignore_reason(self) -> str | None:
        """Why France's or the escorts' news about this request changes nothing, if it doesn't."""
        if self.executed:
            return "request_executed"
        if self.broken:
            return f"request_{self.broken}"
        return None

    def reply_deadlines(self) -> list[tuple[datetime, str]]:
        if not self.open_request or self.answer is not None:
            return []
        due = [(rules.reply_lapses_at(self.formed_at), "lapse")]
        if not self.overdue_alerted:
            due.append((rules.reply_overdue_at(self.formed_at), "overdue"))
        return due

    def answered(self, decision: str) -> None:
        assert self.open_request and self.answer is None
        self.answer = decision

    def execute(self) -> None:
        assert self.open_request
        self.executed = True

    def break_(self, why: str) -> None:
        assert self.live
        self.broken = why

    def seat(self, application_id: str | None) -> None:
        self.application_id = application_id
