"""Handlers of France's answers and the escorts' movements, and the request's clocks
(reply overdue at 14 days, lapse at 28, the 90-day hold limit)."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Callable

from services.matching.pair import Pair
from services.matching.pairing import assess, break_pair, withdraw
from services.matching.return_side import rejudge_later_arrivals
from shared.events import inbound as ev
from shared.events.internal import Screening

if TYPE_CHECKING:
    from services.matching.exchange import Exchange


def open_pair(x: "Exchange", request_id: str) -> Pair | None:
    pair = x.repo.pairs.get(request_id)
    reason = pair.ignore_reason() if pair is not None else x.repo.ended.get(request_id, "unknown_request")
    if reason:
        x.decide(request_id, "ignored", [reason])
        return None
    return pair


def answered(x: "Exchange", e: ev.ReturnRequestAnswered, s: Screening) -> None:
    pair = open_pair(x, e.request_id)
    if pair is None:
        return
    if pair.answer is not None:
        x.decide(e.request_id, "ignored", ["request_already_answered"])
        return
    pair.answered(e.decision)
    x.pair_changed(pair)
    if e.decision == "accepted":
        x.count("returns_accepted", e.occurred_at)
        x.decide(pair.request_id, "accepted", ["france_accepted"])
    else:
        x.count("returns_refused", e.occurred_at)
        x.decide(pair.request_id, "refused", ["france_refused"] + ([e.reason_code] if e.reason_code else []))
        break_pair(x, pair, "refused", case_outcome="france_refused")


def executed(x: "Exchange", e: ev.ReturnExecuted, s: Screening) -> None:
    pair = open_pair(x, e.request_id)
    if pair is None:
        return
    case = x.repo.cases[pair.arrival_id]
    reasons = ["return_executed"]
    if case.on_hold:
        reasons.append("executed_despite_hold")
        x.alert("executed_despite_hold", "critical", pair.request_id,
                "A removal on hold was executed: check the open claim or court order at once")
    if pair.answer is None:
        reasons.append("executed_before_answer")
    if e.occurred_at < x.now:
        reasons.append("reported_late")
    pair.execute()
    case.returned(pair.request_id, e.occurred_at)
    x.case_changed(case)
    x.count("returns_executed", e.occurred_at)
    x.repo.ledger.cumulative_returns_executed += 1
    x.repo.touch("meta")
    x.decide(pair.request_id, "executed", reasons)
    # a pair without a seat now has its seat owed: the matching pass gives it to the next
    # ready applicant
    x.pair_changed(pair)
    rejudge_later_arrivals(x, case)


def failed(x: "Exchange", e: ev.ReturnFailed, s: Screening) -> None:
    """"A case whose return failed queues again once unblocked, if still inside its 14-day
    window; otherwise it closes.\""""
    pair = open_pair(x, e.request_id)
    if pair is None:
        return
    case = x.repo.cases[pair.arrival_id]
    x.decide(pair.request_id, "failed", [f"return_failed_{e.reason}"])
    break_pair(x, pair, "failed", case_outcome=None)
    if e.reason == "absconded":
        case.absconded = True
    case.requeue()
    assess(x, case)


# ---- the request's clocks -----------------------------------------------------------------

def overdue(x: "Exchange", request_id: str, due: datetime) -> None:
    pair = x.repo.pairs.get(request_id)
    if pair is None or not pair.open_request or pair.answer is not None or pair.overdue_alerted:
        return
    pair.overdue_alerted = True
    x.pair_changed(pair)
    x.alert("reply_overdue", "warning", request_id, "France has not answered the return request within 14 days")


def lapse(x: "Exchange", request_id: str, due: datetime) -> None:
    """"no answer by day 28 counts as a refusal\""""
    pair = x.repo.pairs.get(request_id)
    if pair is None or not pair.open_request or pair.answer is not None:
        return
    x.alert("reply_lapsed", "warning", request_id, "No answer from France by day 28: counted as a refusal")
    x.count("returns_refused", due)
    x.decide(request_id, "refused", ["reply_lapsed"])
    break_pair(x, pair, "lapsed", case_outcome="reply_lapsed")


def hold_limit(x: "Exchange", request_id: str, due: datetime) -> None:
    """"still open 90 days after landing (the treaty's 3-month overall limit) ... the request is
    withdrawn and the pair breaks.\""""
    pair = x.repo.pairs.get(request_id)
    if pair is None or not pair.open_request or not x.repo.cases[pair.arrival_id].on_hold:
        return
    withdraw(x, pair, "three_month_limit", close="three_month_limit")


HANDLERS: dict[type, Callable] = {
    ev.ReturnRequestAnswered: answered,
    ev.ReturnExecuted: executed,
    ev.ReturnFailed: failed,
}
