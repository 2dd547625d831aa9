"""Forming, seating, breaking and offering pairs: the operations that touch a case, a seat, a
pair and a week together. Each reads the queues in rule order and asks the aggregates."""
from __future__ import annotations

from typing import TYPE_CHECKING

from services.matching import rules
from services.matching.case import Case
from services.matching.events import AdmissionOfferOrdered, ReturnRequestOrdered, WithdrawalOrdered
from services.matching.pair import Pair
from services.matching.seat import Seat
from services.matching.week import week_of
from shared.ids import derived_id_str
from shared.timeutil import add_months

if TYPE_CHECKING:
    from services.matching.exchange import Exchange


def match(x: "Exchange") -> None:
    """"After every event it consumes, matching makes one pass over all ready returns and seats
    in rule order\": owed seats first, then new pairs under the cap, then offers."""
    if x.repo.ledger.now is None:
        return
    if len(x.owed):
        owed = list(x.owed)
        for unit in rules.fill_seats(iter(x.ready_seats), len(owed)):
            for application_id in unit.application_ids:
                seat_in(x, x.repo.pairs[owed.pop(0)], x.repo.seats[application_id],
                        ["takes_owed_seat_of_executed_return"])
    form_new_pairs(x)
    offer_ready(x)


def form_new_pairs(x: "Exchange") -> None:
    ledger, now = x.repo.ledger, x.now
    if ledger.paused or not rules.scheme_open(now, x.settings.scheme_end):
        return
    week = x.repo.week(week_of(now))
    room = week.room(x.settings.default_cap)
    if room <= 0 or not len(x.returns) or not len(x.ready_seats):
        return
    chosen = rules.next_pairs(iter(x.returns), iter(x.ready_seats), room, len(x.returns))
    for unit, cases in chosen:
        for application_id, ready in zip(unit.application_ids, cases):
            form_pair(x, x.repo.cases[ready.arrival_id], x.repo.seats[application_id], week.week, unit)
    if chosen and week.reached_cap(x.settings.default_cap):
        x.alert("cap_reached", "info", week.week,
                f"Week {week.week} has reached its cap of {week.cap_or(x.settings.default_cap)} pairs")


def form_pair(x: "Exchange", case: Case, seat: Seat, week_name: str, unit: rules.Unit) -> None:
    """"a pair is one returnable person and one admission seat, formed together under the
    week's cap; no return is requested without its admission seat.\""""
    now = x.now
    request_id = derived_id_str(x.cause, "request", case.arrival_id)
    pair = Pair(request_id=request_id, arrival_id=case.arrival_id, application_id=None, week=week_name,
                formed_at=now, seq=x.repo.ledger.next_seq())
    x.repo.pairs[request_id] = pair
    x.repo.touch("meta")
    x.repo.week(week_name).pair_formed()
    x.live_pairs_changed(week_name, +1, formed=True)
    case.pair_with(request_id)
    x.case_changed(case)
    case_reasons = ["reentrant_first"] if case.reentrant else ["oldest_landed_at_first"]
    seat_reasons = ["priority_nationality" if unit.priority else "oldest_application_first"]
    if unit.head:
        seat_reasons.append("back_at_head_after_broken_pair")
    if unit.size > 1:
        seat_reasons.append(f"family_group_of_{unit.size}")
    x.decide(case.arrival_id, "paired", case_reasons + ["within_weekly_cap", f"week_{week_name}"])
    seat_in(x, pair, seat, seat_reasons + ["within_weekly_cap"])
    x.order(ReturnRequestOrdered(request_id=request_id, arrival_id=case.arrival_id,
                                 reply_due_by=rules.reply_overdue_at(now).isoformat(), week=week_name))
    for due, kind in pair.reply_deadlines():
        x.deadlines.at(due, kind, request_id)


def seat_in(x: "Exchange", pair: Pair, seat: Seat, reasons: list[str]) -> None:
    pair.seat(seat.application_id)
    seat.take(pair.request_id)
    x.pair_changed(pair)
    x.seat_changed(seat)
    x.decide(seat.application_id, "paired", reasons + [f"request_{pair.request_id}"])


def break_pair(x: "Exchange", pair: Pair, why: str, case_outcome: str | None) -> None:
    """A pair breaks: its week's place is freed, the seat goes back to the head of its queue."""
    pair.break_(why)
    x.repo.week(pair.week).pair_broken()
    x.live_pairs_changed(pair.week, -1)
    case = x.repo.cases[pair.arrival_id]
    case.unpair()
    if case_outcome:
        close_case(x, case, (case_outcome,))
    else:
        x.case_changed(case)
    if pair.application_id:
        seat = x.repo.seats[pair.application_id]
        if seat.status == "paired":
            seat.back_to_head()
            x.seat_changed(seat)
            x.decide(seat.application_id, "requeued", [f"pair_{why}", "back_to_head_of_queue"])
    x.pair_changed(pair)


def withdraw(x: "Exchange", pair: Pair, reason: str, close: str | None) -> None:
    x.order(WithdrawalOrdered(request_id=pair.request_id, reason_code=reason))
    x.decide(pair.request_id, "withdrawn", [reason])
    break_pair(x, pair, "withdrawn", case_outcome=close)


def close_case(x: "Exchange", case: Case, reasons: tuple[str, ...]) -> None:
    case.close(reasons)
    x.case_changed(case)
    x.decide(case.arrival_id, "ineligible", reasons)


def assess(x: "Exchange", case: Case, first: bool = False) -> None:
    """Re-read a case after anything about it changed, and say so when its standing moved."""
    verdict = case.judge(x.settings.scheme_start, x.now, first, x.settings.request_window_days)
    reasons = verdict.reasons
    if verdict.kind == "close":
        close_case(x, case, reasons)
        return
    if verdict.kind == "blocked":
        case.block(reasons)
        x.decide(case.arrival_id, "blocked", reasons)
    elif verdict.kind == "eligible":
        case.make_eligible()
        x.decide(case.arrival_id, "eligible", reasons)
    elif verdict.kind in ("withdraw", "hold", "lift", "keep"):
        pair = x.repo.pairs[case.request_id]  # type: ignore[index]
        if verdict.kind == "withdraw":
            withdraw(x, pair, reasons[0], close=reasons[0])
            return
        if verdict.kind == "hold":
            hold(x, case, pair, reasons)
        elif verdict.kind == "lift":
            case.lift()
            x.decide(pair.request_id, "hold_lifted", reasons)
        else:
            case.last_reasons = list(reasons)
    x.case_changed(case)


def hold(x: "Exchange", case: Case, pair: Pair, reasons: tuple[str, ...]) -> None:
    """"A blocker that opens after the request was sent holds the removal ... still open 90 days
    after landing ... the request is withdrawn; a hold that opens after day 90 meets the limit
    at once.\""""
    case.hold(reasons)
    x.decide(pair.request_id, "held", reasons)
    x.alert("removal_on_hold", "warning", pair.request_id,
            "A blocker opened after the request was sent: removal on hold")
    if rules.hold_limit_reached(case.landed_at, x.now):
        withdraw(x, pair, "three_month_limit", close="three_month_limit")
    else:
        x.deadlines.at(rules.hold_limit(case.landed_at), "hold_limit", pair.request_id)


def offer_ready(x: "Exchange") -> None:
    """"An admission is offered only once every return paired with it has been executed"; a
    family's offers go out together once every return paired with the group is executed."""
    for request_id in sorted(x.awaiting_offer, key=lambda r: x.repo.pairs[r].seq):
        pair = x.repo.pairs.get(request_id)
        if pair is None or not pair.awaits_offer:
            continue
        seat = x.repo.seats[pair.application_id]  # type: ignore[index]
        members = [m for m in x.repo.family(seat) if m.status not in ("withdrawn", "refused")]
        if any(m.status not in ("paired", "offered", "arrived") for m in members):
            continue  # a member still waits for its return
        member_pairs = [x.repo.pairs[m.request_id] for m in members if m.status == "paired"]  # type: ignore[index]
        if all(p.executed for p in member_pairs):
            for p in member_pairs:
                offer(x, p)


def offer(x: "Exchange", pair: Pair) -> None:
    seat = x.repo.seats[pair.application_id]  # type: ignore[index]
    now = x.now
    pair.offered = True
    seat.offer()
    x.repo.ledger.cumulative_admissions_offered += 1
    x.repo.touch("meta")
    x.count("admissions_offered", now)
    x.order(AdmissionOfferOrdered(application_id=seat.application_id, family_group_ref=seat.family_group_ref,
                                  paired_request_ids=[pair.request_id], week=week_of(now),
                                  visa_valid_until=add_months(now, 3).isoformat()))
    x.seat_changed(seat)
    x.pair_changed(pair)


def drop_seats(x: "Exchange", seats: list[Seat], status: str, reasons: list[str]) -> None:
    """"When the admission side of a pair drops (withdrawal, refusal), the next ready applicant
    takes that seat in the same pair; with none ready, an unexecuted return's request is
    withdrawn and its case queues again, while an executed return's seat stays owed.\""""
    orphaned: list[Pair] = []
    for seat in seats:
        request_id = seat.drop(status, reasons)
        x.seat_changed(seat)
        x.decide(seat.application_id, "refused_admission" if status == "refused" else "withdrawn", reasons)
        pair = x.repo.pairs.get(request_id) if request_id else None
        if pair is not None and pair.live:
            pair.seat(None)
            x.pair_changed(pair)
            orphaned.append(pair)
    open_pairs = sorted((p for p in orphaned if not p.executed), key=lambda p: p.seq)
    if not open_pairs:
        return
    for unit in rules.fill_seats(iter(x.ready_seats), len(open_pairs)):
        for application_id in unit.application_ids:
            seat_in(x, open_pairs.pop(0), x.repo.seats[application_id], ["replaces_dropped_applicant"])
    for pair in open_pairs:
        case = x.repo.cases[pair.arrival_id]
        withdraw(x, pair, "admission_side_dropped", close=None)
        case.requeue()
        assess(x, case)
