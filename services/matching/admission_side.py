"""Handlers of the admission side: applications, vetting, withdrawals, arrivals under an offer,
and illegal-working reports."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from services.matching import rules
from services.matching.pairing import drop_seats
from services.matching.deferred import defer, replay_deferred
from services.matching.seat import Seat
from shared.events import inbound as ev
from shared.events.internal import Screening

if TYPE_CHECKING:
    from services.matching.exchange import Exchange


def expression_of_interest(x: "Exchange", e: ev.ExpressionOfInterestSubmitted, s: Screening) -> None:
    if x.repo.known_application(e.application_id):
        x.decide(e.application_id, "ignored", ["application_already_submitted"])
        return
    seat = Seat(application_id=e.application_id, family_group_ref=e.family_group_ref,
                nationality=e.nationality, date_of_birth=e.date_of_birth,
                located_in_france_verified=e.located_in_france_verified, submitted_at=e.submitted_at,
                family_group_size=getattr(e, "family_group_size", None))
    x.repo.seats[seat.application_id] = seat
    x.repo.join_family(seat)
    refusals = rules.applicant_refusals(
        located_in_france_verified=e.located_in_france_verified, date_of_birth=e.date_of_birth,
        submitted_at=e.submitted_at, in_family_group=bool(e.family_group_ref))
    if refusals:
        refuse_application(x, seat.application_id, *refusals)
    elif any(m.status == "refused" for m in x.repo.family(seat) if m is not seat):
        refuse_application(x, seat.application_id, "family_member_refused")
    else:
        seat.last_reasons = ["awaiting_vetting"]
        x.decide(seat.application_id, "blocked", ["awaiting_vetting"])
    x.seat_changed(seat)
    replay_deferred(x, f"p:{seat.application_id}")


def _seat_or_defer(x: "Exchange", e: ev.ApplicationVetted | ev.ApplicationWithdrawn, s: Screening) -> Seat | None:
    """The seat an event is about; a retired one ignores it, an unknown one defers it."""
    seat = x.repo.seats.get(e.application_id)
    if seat is None and e.application_id in x.repo.closed_seats:
        x.decide(e.application_id, "ignored", [f"application_{x.repo.closed_seats[e.application_id]}"])
    elif seat is None:
        defer(x, f"p:{e.application_id}", e.application_id, e, s, "application_not_yet_submitted")
    return seat


def application_vetted(x: "Exchange", e: ev.ApplicationVetted, s: Screening) -> None:
    seat = _seat_or_defer(x, e, s)
    if seat is None:
        return
    if seat.status != "waiting":
        x.decide(seat.application_id, "ignored", [f"application_{seat.status}"])
        return
    if seat.vetting is not None:
        x.decide(seat.application_id, "ignored", ["already_vetted"])
        return
    seat.vetting = e.security_outcome
    cases = [x.repo.cases[a] for a in s.arrival_ids if a in x.repo.cases]
    banned = (any(c.status == "returned" or c.reentrant for c in cases)
              or any(x.repo.closed_cases.get(a, False) or a in x.repo.returned for a in s.arrival_ids))
    refusals = rules.vetting_refusals(security_outcome=e.security_outcome, prior_arrivals=len(s.arrival_ids),
                                      banned=banned, reports=len(s.report_ids))
    if refusals:
        refuse_application(x, seat.application_id, *refusals)
    else:
        announce(x, seat)


def announce(x: "Exchange", seat: Seat) -> None:
    """Say when a vetted seat (or its whole family) is ready; a family waits for its members."""
    family = x.repo.family(seat)
    group = x.repo.families.get(seat.family_group_ref) if seat.family_group_ref else None
    complete = group is None or group.complete(family)
    reasons = ["vetted_clear", "located_in_france_verified"] if complete else ["awaiting_family_members"]
    for member in (family if complete else [seat]):
        if member.status == "waiting" and member.last_reasons != reasons and (member.ready or not complete):
            member.last_reasons = reasons
            x.decide(member.application_id, "eligible" if complete else "blocked", reasons)
        x.seat_changed(member)


def application_withdrawn(x: "Exchange", e: ev.ApplicationWithdrawn, s: Screening) -> None:
    seat = _seat_or_defer(x, e, s)
    if seat is None:
        return
    if seat.status in ("withdrawn", "refused", "offered", "arrived"):
        x.decide(seat.application_id, "ignored", [f"application_{seat.status}"])
        return
    drop_seats(x, [seat], "withdrawn", ["application_withdrawn"])
    for member in x.repo.family(seat):
        x.seat_changed(member, touch=False)


def refuse_application(x: "Exchange", application_id: str, *reasons: str) -> None:
    """"A family group ... is admitted whole or not at all": a member refused refuses the group."""
    seat = x.repo.seats.get(application_id)
    if seat is None or seat.status in ("refused", "withdrawn", "offered", "arrived"):
        return
    others = [m for m in x.repo.family(seat) if m is not seat and m.status in ("waiting", "paired")]
    drop_seats(x, [seat], "refused", list(reasons))
    if others:
        drop_seats(x, others, "refused", ["family_member_refused"])


def admission_arrived(x: "Exchange", e: ev.AdmissionArrived, s: Screening) -> None:
    seat = x.repo.seats.get(e.application_id)
    if seat is None or seat.status != "offered":
        arrived = (seat.status if seat is not None else x.repo.closed_seats.get(e.application_id)) == "arrived"
        x.decide(e.application_id, "ignored", ["already_arrived" if arrived else "no_offer"])
        return
    seat.status = "arrived"
    x.count("admissions_arrived", e.occurred_at)
    x.decide(seat.application_id, "admitted", ["arrived_under_offer"])
    x.seat_changed(seat)


def illegal_working(x: "Exchange", e: ev.IllegalWorkingEncounter, s: Screening) -> None:
    subjects = list(s.arrival_ids) + list(s.application_ids)
    if not subjects:
        x.decide(e.report_id, "ignored", ["no_biometric_match"])
        return
    x.count("illegal_working_matches", e.occurred_at)
    x.alert("illegal_working_match", "warning", e.report_id,
            f"Illegal working encounter matches {len(subjects)} record(s) of the scheme")
    for arrival_id in s.arrival_ids:
        x.decide(arrival_id, "illegal_working_match", ["biometric_match"])
    for application_id in s.application_ids:
        x.decide(application_id, "illegal_working_match", ["biometric_match"])
        refuse_application(x, application_id, "illegal_working_in_uk")


HANDLERS: dict[type, Callable] = {
    ev.ExpressionOfInterestSubmitted: expression_of_interest,
    ev.ApplicationVetted: application_vetted,
    ev.ApplicationWithdrawn: application_withdrawn,
    ev.AdmissionArrived: admission_arrived,
    ev.IllegalWorkingEncounter: illegal_working,
}
