"""Handlers of the return side: arrivals, casework, the request window, deferred events, and
re-entry judged by event time. Each loads the case, asks it, and lets pairing act."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from services.matching import rules
from services.matching.admission_side import refuse_application
from services.matching.case import Case
from services.matching.deferred import defer, replay_deferred
from services.matching.events import BanOrdered
from services.matching.pairing import assess, close_case
from shared.events import inbound as ev
from shared.events.internal import Screening

if TYPE_CHECKING:
    from services.matching.exchange import Exchange


def arrival_recorded(x: "Exchange", e: ev.ArrivalInHouse, s: Screening) -> None:
    if x.repo.known_arrival(e.arrival_id):
        x.decide(e.arrival_id, "ignored", ["arrival_already_recorded"])
        return
    case = Case(
        arrival_id=e.arrival_id, landed_at=e.landed_at, recorded_at=e.occurred_at, departed_from=e.departed_from,
        claimed_minor=e.claimed_minor, asylum_claimed=e.asylum_claimed, person_bucket=s.person_bucket,
    )
    x.repo.cases[case.arrival_id] = case
    x.repo.touch(f"case:{case.arrival_id}")
    # the person link: enforcement names the same person's other arrivals, so a return
    # executed later in arrival order but earlier in event time still finds this one
    for other_id in s.arrival_ids:
        case.link(other_id)
        other = x.repo.cases.get(other_id)
        if other is not None:
            other.link(case.arrival_id)
            x.repo.touch(f"case:{other_id}")
        returned = x.repo.returned.get(other_id)
        if returned is not None and case.reentry_after(*returned):
            reentry(x, case, *returned)
    for application_id in s.application_ids:
        refuse_application(x, application_id, "prior_irregular_entry")
    replay_deferred(x, f"a:{case.arrival_id}")
    assess(x, case, first=True)


def reentry(x: "Exchange", later: Case, request_id: str, executed_at: datetime) -> None:
    """"A person who was returned and comes back is banned from the UK asylum system and
    returned again first: their asylum claim no longer blocks them.\""""
    later.mark_reentrant(request_id)
    x.case_changed(later)
    x.count("reentries_detected", rules.reentry_known_at(later.recorded_at or x.now, executed_at))
    x.alert("reentry_detected", "warning", later.arrival_id,
            "A person returned under the scheme has arrived again: asylum ban, returned first")
    x.decide(later.arrival_id, "reentry_detected", ["returned_earlier", f"request_{request_id}"])
    x.order(BanOrdered(arrival_id=later.arrival_id, returned_request_id=request_id,
                       person_bucket=later.person_bucket))


def rejudge_later_arrivals(x: "Exchange", returned: Case) -> None:
    """A late ReturnExecuted: "makes every arrival of the same person that landed after t a
    re-entry ... even if that arrival was recorded before the ReturnExecuted reached the
    system"; a later-landed case still open is assessed again."""
    assert returned.executed_request_id and returned.executed_at
    for other_id in sorted(returned.same_person):
        later = x.repo.cases.get(other_id)
        if later is None or not later.reentry_after(returned.executed_request_id, returned.executed_at):
            continue
        reentry(x, later, returned.executed_request_id, returned.executed_at)
        if later.queued or later.status == "paired":
            assess(x, later)


def window_closes(x: "Exchange", arrival_id: str, due: datetime) -> None:
    case = x.repo.cases.get(arrival_id)
    if case is not None and case.queued and not rules.within_window(case.landed_at, x.now, x.settings.request_window_days):
        close_case(x, case, ("request_window_expired",))


# ---- casework ----------------------------------------------------------------------------

def casework(x: "Exchange", e: Any, change: Callable[[Case], bool | None]) -> None:
    """Apply one casework fact to its case; `change` returns False when it changed nothing (and
    said why)."""
    case = x.repo.cases.get(e.arrival_id)
    if case is None and x.repo.over_status(e.arrival_id):
        x.decide(e.arrival_id, "ignored", [f"case_{x.repo.over_status(e.arrival_id)}"])
        return
    if case is None:
        defer(x, f"a:{e.arrival_id}", e.arrival_id, e, Screening(), "arrival_not_yet_recorded")
        return
    if case.over:
        change(case)  # keep the record true, but nothing follows from it
        x.repo.touch(f"case:{case.arrival_id}")
        x.decide(case.arrival_id, "ignored", [f"case_{case.status}"])
        return
    if change(case) is False:
        return
    x.repo.touch(f"case:{case.arrival_id}")
    if not x.quiet:
        assess(x, case)


def asylum_claim_decided(x: "Exchange", e: ev.AsylumClaimDecided, s: Screening) -> None:
    def change(c: Case):
        if not c.asylum_claimed:
            x.decide(c.arrival_id, "ignored", ["no_asylum_claim"])
            return False
        c.asylum_outcome = e.outcome
    casework(x, e, change)


def _claim(x: "Exchange", e: Any, book: str, ident: str, outcome: str | None) -> None:
    """Lodged / filed (outcome None) or resolved / decided."""
    never = "protection_claim_never_lodged" if book == "protection_claims" else "legal_challenge_never_filed"

    def change(c: Case):
        claims: dict = getattr(c, book)
        if outcome is None:
            if ident in claims:
                x.decide(c.arrival_id, "ignored", [f"{book[:-1]}_already_recorded"])
                return False
            claims[ident] = "open"
        elif claims.get(ident) != "open":
            x.decide(c.arrival_id, "ignored", [never] if ident not in claims else [f"{book[:-1]}_already_resolved"])
            return False
        else:
            claims[ident] = outcome
    casework(x, e, change)


def age_assessed(x: "Exchange", e: ev.AgeAssessed, s: Screening) -> None:
    def change(c: Case):
        c.assessed_minor = e.assessed_minor
    casework(x, e, change)


def person_absconded(x: "Exchange", e: ev.PersonAbsconded, s: Screening) -> None:
    def change(c: Case):
        c.absconded = True
    casework(x, e, change)


def person_detained(x: "Exchange", e: ev.PersonDetained, s: Screening) -> None:
    def change(c: Case):
        if not c.absconded:
            x.decide(c.arrival_id, "ignored", ["person_not_absconded"])
            return False
        c.absconded = False
    casework(x, e, change)


HANDLERS: dict[type, Callable] = {
    ev.ArrivalInHouse: arrival_recorded,
    ev.AsylumClaimDecided: asylum_claim_decided,
    ev.ProtectionClaimLodged: lambda x, e, s: _claim(x, e, "protection_claims", e.claim_id, None),
    ev.ProtectionClaimResolved: lambda x, e, s: _claim(x, e, "protection_claims", e.claim_id, e.outcome),
    ev.LegalChallengeFiled: lambda x, e, s: _claim(x, e, "challenges", e.challenge_id, None),
    ev.LegalChallengeDecided: lambda x, e, s: _claim(x, e, "challenges", e.challenge_id, e.outcome),
    ev.AgeAssessed: age_assessed,
    ev.PersonAbsconded: person_absconded,
    ev.PersonDetained: person_detained,
}
