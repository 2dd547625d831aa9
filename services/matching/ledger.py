"""The scheme-wide figures and switches: now, pause, cumulative totals."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from services.matching import rules
from services.matching.model import Record


@dataclass
class Ledger(Record):
    datetimes: ClassVar = ("now",)

    now: datetime | None = None
    paused: bool = False
    cumulative_returns_executed: int = 0
    cumulative_admissions_offered: int = 0
    imbalance_alerted: bool = False
    seq: int = 0  # pairs formed so far: the order in which owed seats are filled

    def advance(self, instant: datetime) -> bool:
        """"now ... never goes backwards, and an older event does not move it.\""""
        if self.now is None or instant > self.now:
            self.now = instant
            return True
        return False

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def imbalance_changed(self, margin: int) -> bool | None:
        """True when the imbalance alert should be raised, False when it clears, None if neither."""
        off = rules.imbalance(self.cumulative_returns_executed, self.cumulative_admissions_offered, margin)
        if off and not self.imbalance_alerted:
            self.imbalance_alerted = True
            return True
        if not off and self.imbalance_alerted:
            self.imbalance_alerted = False
            return False
        return None
