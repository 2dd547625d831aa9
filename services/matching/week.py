"""A week: its cap, its live pairs, and the figures of what happened in it (by event time)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from services.matching.model import Record
from shared.timeutil import iso_week, week_start

COUNTS = ("returns_requested", "returns_accepted", "returns_refused", "returns_executed", "admissions_offered",
          "admissions_arrived", "reentries_detected", "illegal_working_matches")


@dataclass
class Week(Record):
    week: str
    cap: int | None = None
    live_pairs: int = 0
    returns_requested: int = 0
    returns_accepted: int = 0
    returns_refused: int = 0
    returns_executed: int = 0
    admissions_offered: int = 0
    admissions_arrived: int = 0
    reentries_detected: int = 0
    illegal_working_matches: int = 0
    cap_alerted: bool = False

    def cap_or(self, default: int) -> int:
        return default if self.cap is None else self.cap

    def room(self, default: int) -> int:
        """"a pair forms only while its week's live pairs are below that week's cap\""""
        return max(0, self.cap_or(default) - self.live_pairs)

    def count(self, name: str, n: int = 1) -> None:
        if name not in COUNTS:
            raise KeyError(name)
        setattr(self, name, getattr(self, name) + n)

    def pair_formed(self) -> None:
        self.live_pairs += 1
        self.returns_requested += 1

    def pair_broken(self) -> None:
        """"a broken pair frees its place while the week is open\""""
        self.live_pairs -= 1

    def set_cap(self, cap: int, default: int) -> int:
        before = self.cap_or(default)
        self.cap = cap
        if self.cap_alerted and self.live_pairs < cap:
            self.cap_alerted = False
        return before

    def reached_cap(self, default: int) -> bool:
        """True once, when the week fills up (the cap_reached alert)."""
        if self.live_pairs >= self.cap_or(default) and not self.cap_alerted:
            self.cap_alerted = True
            return True
        return False

    def figures(self, default_cap: int) -> dict:
        """"pairs_formed counts the week's live pairs (formed that week, not broken)\""""
        return {"week": self.week, "cap": self.cap_or(default_cap), "pairs_formed": self.live_pairs,
                **{name: getattr(self, name) for name in COUNTS}}


_last_week: tuple[datetime, datetime, str] | None = None  # [start, end) in UTC, and its name


def week_of(instant: datetime) -> str:
    """`iso_week(instant)`: the London ISO week an instant falls in. Events come in time order,
    so the last week's bounds are remembered and nearly every call is two comparisons."""
    global _last_week
    last = _last_week
    if last is not None and instant.tzinfo is not None and last[0] <= instant < last[1]:
        return last[2]
    name = iso_week(instant)
    start = week_start(name)
    end = datetime.combine(start.date() + timedelta(days=7), start.timetz())  # the next Monday 00:00, London
    _last_week = (start.astimezone(timezone.utc), end.astimezone(timezone.utc), name)
    return name
