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
DEFERRAL_LIMIT = timedelta(days=14)
# The contract's range for any date or time (intake rejects the rest as `schema`).
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


def request_window_closes(landed_at: datetime, window_days: int = REQUEST_WINDOW.days) -> datetime:
    """"A return request must reach France within 14 days of the person landing."
    Allowed only while now < landed_at + 14 d (`window_days`: Settings.request_window_days,
    so `oioo whatif --window-days` can ask what another window would have done)."""
    return landed_at + timedelta(days=window_days)


def within_window(landed_at: datetime, now: datetime, window_days: int = REQUEST_WINDOW.days) -> bool:
    return now < request_window_closes(landed_at, window_days)


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


# ---- judging a case -----------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """What a case's facts mean now. kind: close | blocked | eligible (a queued case);
    withdraw | hold | lift | keep (a paired case); quiet when nothing needs saying."""

    kind: str
    reasons: tuple[str, ...] = ()


def judge_case(c: CaseFacts, *, status: str, on_hold: bool, last_reasons: Sequence[str], now: datetime,
               first: bool = False, window_days: int = REQUEST_WINDOW.days) -> Verdict:
    """Re-read a case after anything about it changed.

    A queued case: a permanent bar closes it; past its window it closes
    ("request_window_expired"); an open blocker blocks it; else it is eligible. A paired case:
    "A blocker that opens after the request was sent holds the removal ... resolved against the
    person ... the hold lifts ... resolved in their favour (upheld) ... the request is withdrawn".
    """
    bars = permanent_bars(c)
    found = tuple(blockers(c))
    extra = ("reentrant_after_return",) if c.reentrant else ()
    if status in ("waiting", "blocked"):
        if bars:
            return Verdict("close", tuple(bars))
        if not within_window(c.landed_at, now, window_days):
            return Verdict("close", ("request_window_expired",))
        if found:
            said = not first and status == "blocked" and list(found) == list(last_reasons)
            return Verdict("quiet" if said else "blocked", found + extra)
        return Verdict("quiet" if not first and status == "waiting" else "eligible", ("no_open_blocker",) + extra)
    if status == "paired":
        if bars:
            return Verdict("withdraw", (bars[0],))
        if found and not on_hold:
            return Verdict("hold", found)
        if on_hold and not found:
            return Verdict("lift", ("blockers_resolved_against_person",))
        return Verdict("keep", found)
    return Verdict("quiet")


def hold_limit_reached(landed_at: datetime, now: datetime) -> bool:
    """"a hold that opens after day 90 meets the limit at once\""""
    return now >= hold_limit(landed_at)


def is_reentry(landed_at: datetime, executed_at: datetime) -> bool:
    """"a ReturnExecuted at t makes every arrival of the same person that landed after t a
    re-entry", whatever order the two facts reached the system in."""
    return landed_at > executed_at


def reentry_known_at(recorded_at: datetime, executed_at: datetime) -> datetime:
    """A re-entry is a fact once both the return and the new arrival have happened: counted in
    the week of the later of the two, so late and in-order delivery count it alike."""
    return max(recorded_at, executed_at)


def deferral_expires(occurred_at: datetime) -> datetime:
    """"An event about a subject the system does not know yet waits for it up to 14 days
    (event time), then is audited as ignored (unknown_subject).\""""
    return occurred_at + DEFERRAL_LIMIT


def cap_change(before: int, after: int, live: int) -> list[str]:
    """"Lowering a cap below the live pairs breaks none; it stops new ones.\""""
    reasons = [f"cap_{'raised' if after > before else 'lowered' if after < before else 'unchanged'}"]
    if after < live:
        reasons.append("below_live_pairs_none_broken")
    return reasons


# ---- the admission side, continued ---------------------------------------------------------

def vetting_refusals(*, security_outcome: str, prior_arrivals: int, banned: bool, reports: int) -> list[str]:
    """"vetted with biometrics and cleared by security ... anyone who entered or tried to enter
    the UK irregularly, is banned, or is found working illegally in the UK is refused.\""""
    reasons = []
    if security_outcome == "refused":
        reasons.append("security_refused")
    if prior_arrivals:
        reasons.append("asylum_ban" if banned else "prior_irregular_entry")
    if reports:
        reasons.append("illegal_working_in_uk")
    return reasons


def family_complete(declared_size: int | None, ready: int, members: int) -> bool:
    """"A family group ... is admitted whole or not at all"; with `family_group_size`, "the group
    is complete only once that many members are ready, and no member is paired before; without
    it, the group is the members who have applied.\""""
    if ready == 0:
        return False
    if declared_size is not None:
        return ready >= declared_size
    return ready == members


# ---- ordering and pairing ------------------------------------------------------------------

def return_order(reentrant: bool, landed_at: datetime, arrival_id: str) -> tuple:
    """"Returns are taken re-entrants first, then oldest landed_at" (tie: arrival_id)."""
    return (not reentrant, landed_at, arrival_id)


def seat_order(head: bool, priority: bool, submitted_at: datetime, application_ids: tuple[str, ...]) -> tuple:
    """"Priority nationalities (one tier) first, then oldest application" (tie: application_id).
    Seats whose pair broke on the return side go back to the head of the queue."""
    return (not head, not priority, submitted_at, application_ids)


@dataclass(frozen=True)
class ReadyCase:
    arrival_id: str
    landed_at: datetime
    reentrant: bool

    @property
    def order(self) -> tuple:
        return return_order(self.reentrant, self.landed_at, self.arrival_id)


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

    @property
    def order(self) -> tuple:
        return seat_order(self.head, self.priority, self.submitted_at, self.application_ids)


def order_returns(cases: Iterable[ReadyCase]) -> list[ReadyCase]:
    return sorted(cases, key=lambda c: c.order)


def order_units(units: Iterable[Unit]) -> list[Unit]:
    return sorted(units, key=lambda u: u.order)


def next_pairs(cases: Iterable[ReadyCase], units: Iterable[Unit], room: int,
               returns_ready: int | None = None) -> list[tuple[Unit, list[ReadyCase]]]:
    """First fit: each unit in priority order takes the next k returns if k places remain.

    "applicants in priority order, first fit (a family that no longer fits the week's
    remaining cap waits, the next one that fits goes)." "a group of k needs k pairs."
    `cases` and `units` must come in rule order (the queues keep them so); both are read
    lazily, so a pass costs what it forms, not the size of the backlog.
    """
    chosen: list[tuple[Unit, list[ReadyCase]]] = []
    returns = iter(cases)
    left = returns_ready
    for unit in units:
        if room <= 0 or left == 0:
            break
        if unit.size <= room and (left is None or unit.size <= left):
            taken = [c for _, c in zip(range(unit.size), returns)]
            if len(taken) < unit.size:
                break
            chosen.append((unit, taken))
            room -= unit.size
            if left is not None:
                left -= unit.size
    return chosen


def fill_seats(units: Iterable[Unit], free_seats: int) -> list[Unit]:
    """Seats that must be filled without new places (a dropped applicant's seat in a live pair,
    or an executed return's owed seat): first fit in priority order."""
    chosen = []
    for unit in units:
        if free_seats <= 0:
            break
        if unit.size <= free_seats:
            chosen.append(unit)
            free_seats -= unit.size
    return chosen


def imbalance(cum_executed: int, cum_offered: int, margin: int) -> bool:
    """Joint Committee watch: executed returns and offered admissions drifting apart."""
    return abs(cum_executed - cum_offered) > margin
