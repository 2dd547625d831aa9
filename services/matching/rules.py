"""The scheme's decisions as pure functions over plain values: no I/O, no clock.

Each docstring quotes the treaty rule (contract v1, "The scheme, as rules") it implements.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Iterable, Sequence

from shared.timeutil import LONDON

REQUEST_WINDOW = timedelta(days=14)
REPLY_DUE = timedelta(days=14)
REPLY_LAPSE = timedelta(days=28)
OVERALL_LIMIT = timedelta(days=90)
ASYLUM_CLEARED = frozenset({"withdrawn", "inadmissible"})


@dataclass(frozen=True)
class CaseFacts:
    """What the rules need to know of one arrival's case."""

    claimed_minor: bool
    assessed_minor: bool | None
    asylum_claimed: bool
    asylum_outcome: str | None
    open_protection_claims: int
    open_challenges: int
    upheld_protection_claim: bool
    upheld_challenge: bool
    absconded: bool
    departed_from: str
    landed_at: datetime
    reentrant: bool
    scheme_start: date


def permanent_bars(c: CaseFacts) -> list[str]:
    """Reasons a case can never be returned.

    "Not returnable: ... a person who did not depart from France." "upheld: never returnable."
    "an arrival that landed before the start is recorded ... but is not returnable."
    """
    bars = []
    if c.departed_from != "FRA":
        bars.append("not_departed_from_france")
    if c.landed_at.astimezone(LONDON).date() < c.scheme_start:
        bars.append("landed_before_scheme_start")
    if c.upheld_protection_claim:
        bars.append("protection_claim_upheld")
    if c.upheld_challenge:
        bars.append("legal_challenge_upheld")
    return bars


def blockers(c: CaseFacts) -> list[str]:
    """Open reasons a case may not be requested now.

    "Not returnable: minors (claimed or assessed, v1 returns adults only); an asylum claim
    that is not withdrawn or declared inadmissible; an open human-rights, trafficking or
    further-submission claim; a pending judicial review, injunction or appeal; a person who
    has absconded (until detained again)." A returned person who comes back: "their asylum
    claim no longer blocks them (protection claims and court orders still do)."
    """
    found = []
    minor = c.assessed_minor if c.assessed_minor is not None else c.claimed_minor
    if minor:
        found.append("minor")
    if c.asylum_claimed and not c.reentrant and c.asylum_outcome not in ASYLUM_CLEARED:
        found.append("asylum_claim_admitted" if c.asylum_outcome == "admitted_for_consideration"
                     else "asylum_claim_undecided")
    if c.open_protection_claims:
        found.append("protection_claim_open")
    if c.open_challenges:
        found.append("legal_challenge_pending")
    if c.absconded:
        found.append("absconded")
    return found


def request_window_closes(landed_at: datetime) -> datetime:
    """"A return request must reach France within 14 days of the person landing."
    Allowed only while now < landed_at + 14 d."""
    return landed_at + REQUEST_WINDOW


def within_window(landed_at: datetime, now: datetime) -> bool:
    return now < request_window_closes(landed_at)


def hold_limit(landed_at: datetime) -> datetime:
    """"still open 90 days after landing (the treaty's 3-month overall limit), the request is
    withdrawn and the pair breaks.\""""
    return landed_at + OVERALL_LIMIT


def reply_overdue_at(requested_at: datetime) -> datetime:
    """"France answers within 14 days" — reply_overdue fires once now >= request + 14 d."""
    return requested_at + REPLY_DUE


def reply_lapses_at(requested_at: datetime) -> datetime:
    """"28 in exceptional cases; no answer by day 28 counts as a refusal.\""""
    return requested_at + REPLY_LAPSE


def scheme_open(now: datetime, scheme_end: date) -> bool:
    """"no pair forms once now is past the end" (the end is a London calendar date)."""
    return now.astimezone(LONDON).date() <= scheme_end


# ---- admission side ------------------------------------------------------------------------

def age_on(dob: date, day: date) -> int:
    years = day.year - dob.year
    if (day.month, day.day) < (dob.month, dob.day):
        years -= 1
    return years


def applicant_refusals(*, located_in_france_verified: bool, date_of_birth: date,
                       submitted_at: datetime, in_family_group: bool) -> list[str]:
    """Refusals known from the expression of interest alone.

    "Admission: applicants must be in France (verified) ... and 18 or over unless part of a
    family group."
    """
    reasons = []
    if not located_in_france_verified:
        reasons.append("not_located_in_france")
    if not in_family_group and age_on(date_of_birth, submitted_at.astimezone(LONDON).date()) < 18:
        reasons.append("under_18_without_family_group")
    return reasons


# ---- ordering and pairing ------------------------------------------------------------------

@dataclass(frozen=True)
class ReadyCase:
    arrival_id: str
    landed_at: datetime
    reentrant: bool


@dataclass(frozen=True)
class Unit:
    """Seats admitted together: one applicant, or a whole family group (k seats)."""

    application_ids: tuple[str, ...]
    priority: bool
    submitted_at: datetime
    head: bool = False  # a seat whose pair broke on the return side goes back to the head
    family_group_ref: str | None = None

    @property
    def size(self) -> int:
        return len(self.application_ids)


def order_returns(cases: Iterable[ReadyCase]) -> list[ReadyCase]:
    """"Returns are taken re-entrants first, then oldest landed_at" (tie: arrival_id)."""
    return sorted(cases, key=lambda c: (not c.reentrant, c.landed_at, c.arrival_id))


def order_units(units: Iterable[Unit]) -> list[Unit]:
    """"Priority nationalities ... first, then oldest application" (tie: application_id).
    Seats whose pair broke on the return side go back to the head of the queue."""
    return sorted(units, key=lambda u: (not u.head, not u.priority, u.submitted_at, u.application_ids))


def next_pairs(cases: Sequence[ReadyCase], units: Sequence[Unit], room: int) -> list[tuple[Unit, list[ReadyCase]]]:
    """First fit: each unit in priority order takes the next k returns if k places remain.

    "applicants in priority order, first fit (a family that no longer fits the week's
    remaining cap waits, the next one that fits goes)." "a group of k needs k pairs."
    """
    chosen: list[tuple[Unit, list[ReadyCase]]] = []
    queue = list(order_returns(cases))
    taken = 0
    for unit in order_units(units):
        if room <= 0 or taken >= len(queue):
            break
        if unit.size <= room and unit.size <= len(queue) - taken:
            chosen.append((unit, queue[taken:taken + unit.size]))
            taken += unit.size
            room -= unit.size
    return chosen


def fill_seats(units: Sequence[Unit], free_seats: int) -> list[Unit]:
    """Seats that must be filled without new places (a dropped applicant's seat in a live pair,
    or an executed return's owed seat): first fit in priority order."""
    chosen = []
    for unit in order_units(units):
        if free_seats <= 0:
            break
        if unit.size <= free_seats:
            chosen.append(unit)
            free_seats -= unit.size
    return chosen


def imbalance(cum_executed: int, cum_offered: int, margin: int) -> bool:
    """Joint Committee watch: executed returns and offered admissions drifting apart."""
    return abs(cum_executed - cum_offered) > margin
