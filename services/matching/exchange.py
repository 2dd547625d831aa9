"""The exchange: matching's aggregate. Applies one event at a time to the in-memory state and
returns what was decided (effects); knows nothing of Kafka or Redis.

Per event, as the contract orders it: move now forward; fire every deadline now has passed
(oldest first); apply the event; make one matching pass over all ready returns and seats in
rule order; publish the weekly figures that changed.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.matching import rules
from services.matching.model import Case, Meta, Pair, Seat, Week
from shared.events import inbound as ev
from shared.events.internal import Screening
from shared.ids import derived_id
from shared.settings import Settings
from shared.timeutil import add_months, iso_week

UNKNOWN_SUBJECT_EVENTS = (
    ev.AsylumClaimDecided, ev.ProtectionClaimLodged, ev.ProtectionClaimResolved, ev.LegalChallengeFiled,
    ev.LegalChallengeDecided, ev.AgeAssessed, ev.PersonDetained, ev.PersonAbsconded,
)


@dataclass
class Effect:
    """Something decided: kind is decision | alert | instruction | balance."""

    kind: str
    data: dict[str, Any]


@dataclass
class QuotaDelta:
    delta: int = 0
    formed: bool = False


class Exchange:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.meta = Meta()
        self.cases: dict[str, Case] = {}
        self.seats: dict[str, Seat] = {}
        self.pairs: dict[str, Pair] = {}
        self.weeks: dict[str, Week] = {}
        self.pending: dict[str, list[dict]] = {}  # events about subjects not seen yet
        self.families: dict[str, list[str]] = {}
        self._deadlines: list[tuple[datetime, int, str, str]] = []
        self._tie = 0
        # per-batch bookkeeping, taken by the app
        self.dirty: set[str] = set()
        self.quota: dict[str, QuotaDelta] = {}
        # per-event
        self._effects: list[Effect] = []
        self._cause = ""
        self._dirty_weeks: set[str] = set()
        self._quiet = False

    # ------------------------------------------------------------------ persistence
    def load(self, records: dict[str, dict]) -> None:
        self.__init__(self.settings)
        for key, data in records.items():
            kind, _, ident = key.partition(":")
            if kind == "meta":
                self.meta = Meta.from_dict(data)
            elif kind == "case":
                self.cases[ident] = Case.from_dict(data)
            elif kind == "seat":
                seat = Seat.from_dict(data)
                self.seats[ident] = seat
                if seat.family_group_ref:
                    self.families.setdefault(seat.family_group_ref, []).append(ident)
            elif kind == "pair":
                self.pairs[ident] = Pair.from_dict(data)
            elif kind == "week":
                self.weeks[ident] = Week.from_dict(data)
            elif kind == "pending":
                self.pending[ident] = data["events"]
        for members in self.families.values():
            members.sort(key=lambda a: (self.seats[a].submitted_at, a))
        for case in self.cases.values():
            if case.status in ("waiting", "blocked"):
                self._deadline(rules.request_window_closes(case.landed_at), "window", case.arrival_id)
        for pair in self.pairs.values():
            self._schedule_pair(pair)

    def records(self, keys: set[str]) -> dict[str, dict | None]:
        out: dict[str, dict | None] = {}
        for key in keys:
            kind, _, ident = key.partition(":")
            obj: Any = {
                "meta": lambda: self.meta, "case": lambda: self.cases.get(ident),
                "seat": lambda: self.seats.get(ident), "pair": lambda: self.pairs.get(ident),
                "week": lambda: self.weeks.get(ident),
            }.get(kind, lambda: None)()
            if kind == "pending":
                out[key] = {"events": self.pending[ident]} if ident in self.pending else None
            else:
                out[key] = obj.to_dict() if obj is not None else None
        return out

    def _touch(self, *keys: str) -> None:
        self.dirty.update(keys)

    # ------------------------------------------------------------------ helpers
    @property
    def now(self) -> datetime:
        assert self.meta.now is not None
        return self.meta.now

    def week(self, name: str) -> Week:
        if name not in self.weeks:
            self.weeks[name] = Week(week=name)
        return self.weeks[name]

    def cap_of(self, w: Week) -> int:
        return self.settings.default_cap if w.cap is None else w.cap

    def _count(self, field_name: str, week: str | None = None, n: int = 1) -> None:
        w = self.week(week or iso_week(self.now))
        setattr(w, field_name, getattr(w, field_name) + n)
        self._touch(f"week:{w.week}")
        self._dirty_weeks.add(w.week)

    def _decide(self, subject: str, decision: str, reasons: list[str]) -> None:
        self._effects.append(Effect("decision", {"subject_ref": subject, "decision": decision, "reasons": reasons}))

    def _alert(self, kind: str, severity: str, subject: str, message: str) -> None:
        self._effects.append(Effect("alert", {"kind": kind, "severity": severity, "subject_ref": subject,
                                              "message": message}))

    def _instruct(self, kind: str, **fields: Any) -> None:
        self._effects.append(Effect("instruction", {"kind": kind, **fields}))

    def _deadline(self, due: datetime, kind: str, ident: str) -> None:
        self._tie += 1
        heapq.heappush(self._deadlines, (due, self._tie, kind, ident))

    def _schedule_pair(self, pair: Pair) -> None:
        if not pair.open_request:
            return
        if pair.answer is None:
            if not pair.overdue_alerted:
                self._deadline(rules.reply_overdue_at(pair.formed_at), "overdue", pair.request_id)
            self._deadline(rules.reply_lapses_at(pair.formed_at), "lapse", pair.request_id)
        case = self.cases[pair.arrival_id]
        self._deadline(rules.hold_limit(case.landed_at), "hold_limit", pair.request_id)

    # ------------------------------------------------------------------ entry point
    def apply(self, event: ev.Event, screening: Screening) -> list[Effect]:
        self._effects = []
        self._dirty_weeks = set()
        self._cause = str(event.event_id)
        if self.meta.now is None or event.occurred_at > self.meta.now:
            self.meta.now = event.occurred_at
            self._touch("meta")
            self._fire_deadlines()
        self._dispatch(event, screening)
        self._match()
        self._check_imbalance()
        for week in sorted(self._dirty_weeks):
            self._effects.append(Effect("balance", self.figures(week)))
        return self._effects

    def figures(self, week: str) -> dict:
        w = self.week(week)
        return {
            "week": week, "cap": self.cap_of(w), "pairs_formed": w.live_pairs,
            "returns_requested": w.returns_requested, "returns_accepted": w.returns_accepted,
            "returns_refused": w.returns_refused, "returns_executed": w.returns_executed,
            "admissions_offered": w.admissions_offered, "admissions_arrived": w.admissions_arrived,
            "reentries_detected": w.reentries_detected, "illegal_working_matches": w.illegal_working_matches,
            "cumulative_returns_executed": self.meta.cumulative_returns_executed,
            "cumulative_admissions_offered": self.meta.cumulative_admissions_offered,
            "admissions_paused": self.meta.paused,
        }

    def _dispatch(self, event: ev.Event, screening: Screening) -> None:
        handler = getattr(self, f"_on_{type(event).__name__}", None)
        if handler is None:  # pragma: no cover - every inbound type has a handler
            self._decide(ev.subject_of(event), "ignored", ["event_type_not_handled"])
            return
        handler(event, screening)

    # ------------------------------------------------------------------ deadlines
    def _fire_deadlines(self) -> None:
        while self._deadlines and self._deadlines[0][0] <= self.now:
            due, _, kind, ident = heapq.heappop(self._deadlines)
            if kind == "window":
                case = self.cases.get(ident)
                if case and case.status in ("waiting", "blocked") and not rules.within_window(case.landed_at, self.now):
                    self._close_case(case, "request_window_expired")
            else:
                pair = self.pairs.get(ident)
                if pair is None or not pair.open_request:
                    continue
                if kind == "overdue" and pair.answer is None and not pair.overdue_alerted:
                    pair.overdue_alerted = True
                    self._touch(f"pair:{ident}")
                    self._alert("reply_overdue", "warning", ident,
                                "France has not answered the return request within 14 days")
                elif kind == "lapse" and pair.answer is None:
                    self._alert("reply_lapsed", "warning", ident,
                                "No answer from France by day 28: counted as a refusal")
                    self._count("returns_refused")
                    self._decide(ident, "refused", ["reply_lapsed"])
                    self._break_pair(pair, "lapsed", case_outcome="reply_lapsed")
                elif kind == "hold_limit" and self.cases[pair.arrival_id].on_hold:
                    self._withdraw(pair, "three_month_limit", close_case="three_month_limit")

    # ------------------------------------------------------------------ return side
    def _on_ArrivalRecorded(self, e: ev.ArrivalRecorded, s: Screening) -> None:
        if e.arrival_id in self.cases:
            self._decide(e.arrival_id, "ignored", ["arrival_already_recorded"])
            return
        case = Case(
            arrival_id=e.arrival_id, landed_at=e.landed_at, departed_from=e.departed_from,
            claimed_minor=e.claimed_minor, asylum_claimed=e.asylum_claimed,
            particulars={
                "family_name": e.family_name, "given_names": e.given_names,
                "date_of_birth": e.date_of_birth.isoformat() if e.date_of_birth else None,
                "nationality": e.nationality, "landed_at": e.landed_at.isoformat(),
                "landing_point": e.landing_point, "vessel_ref": e.vessel_ref,
            },
        )
        for earlier in s.arrival_ids:
            prior = self.cases.get(earlier)
            if prior is not None and prior.executed_request_id:
                case.reentrant = True
                case.returned_request_id = prior.executed_request_id
        self.cases[case.arrival_id] = case
        self._touch(f"case:{case.arrival_id}")
        if case.reentrant:
            self._count("reentries_detected")
            self._alert("reentry_detected", "warning", case.arrival_id,
                        "A person returned under the scheme has arrived again: asylum ban, returned first")
            self._instruct("RecordBan", arrival_id=case.arrival_id, returned_request_id=case.returned_request_id)
        for application_id in s.application_ids:
            self._refuse_application(application_id, "prior_irregular_entry")
        queued_events = self.pending.pop(f"a:{case.arrival_id}", [])
        if queued_events:
            self._touch(f"pending:a:{case.arrival_id}")
            self._quiet = True  # the first assessment below speaks for the queued casework
            try:
                for queued in queued_events:
                    self._dispatch(ev.ANY_INBOUND.validate_python(queued), Screening())
            finally:
                self._quiet = False
        self._assess(case, first=True)
        if case.status in ("waiting", "blocked"):
            self._deadline(rules.request_window_closes(case.landed_at), "window", case.arrival_id)

    def _case_or_defer(self, e: Any) -> Case | None:
        case = self.cases.get(e.arrival_id)
        if case is None:
            self.pending.setdefault(f"a:{e.arrival_id}", []).append(e.model_dump(mode="json"))
            self._touch(f"pending:a:{e.arrival_id}")
            self._decide(e.arrival_id, "deferred", ["arrival_not_yet_recorded"])
        return case

    def _facts(self, case: Case) -> rules.CaseFacts:
        return rules.CaseFacts(
            claimed_minor=case.claimed_minor, assessed_minor=case.assessed_minor,
            asylum_claimed=case.asylum_claimed, asylum_outcome=case.asylum_outcome,
            open_protection_claims=sum(1 for v in case.protection_claims.values() if v == "open"),
            open_challenges=sum(1 for v in case.challenges.values() if v == "open"),
            upheld_protection_claim=any(v == "upheld" for v in case.protection_claims.values()),
            upheld_challenge=any(v == "upheld" for v in case.challenges.values()),
            absconded=case.absconded, departed_from=case.departed_from, landed_at=case.landed_at,
            reentrant=case.reentrant, scheme_start=self.settings.scheme_start,
        )

    def _assess(self, case: Case, first: bool = False) -> None:
        """Re-read a case after anything about it changed, and say so when its standing moved."""
        self._touch(f"case:{case.arrival_id}")
        facts = self._facts(case)
        bars = rules.permanent_bars(facts)
        found = rules.blockers(facts)
        reasons_extra = ["reentrant_after_return"] if case.reentrant else []
        if case.status in ("waiting", "blocked"):
            if bars:
                self._close_case(case, *bars)
            elif not rules.within_window(case.landed_at, self.now):
                self._close_case(case, "request_window_expired")
            elif found:
                if first or case.status != "blocked" or found != case.last_reasons:
                    self._decide(case.arrival_id, "blocked", found + reasons_extra)
                case.status, case.last_reasons = "blocked", found
            else:
                if first or case.status != "waiting":
                    self._decide(case.arrival_id, "eligible", ["no_open_blocker"] + reasons_extra)
                case.status, case.last_reasons = "waiting", []
        elif case.status == "paired":
            pair = self.pairs[case.request_id]
            if bars:
                self._withdraw(pair, bars[0], close_case=bars[0])
            elif found and not case.on_hold:
                case.on_hold = True
                self._decide(pair.request_id, "held", found)
                self._alert("removal_on_hold", "warning", pair.request_id,
                            "A blocker opened after the request was sent: removal on hold")
            elif case.on_hold and not found:
                case.on_hold = False
                self._decide(pair.request_id, "hold_lifted", ["blockers_resolved_against_person"])
            case.last_reasons = found

    def _close_case(self, case: Case, *reasons: str) -> None:
        case.status, case.closed_reason, case.last_reasons = "closed", reasons[0], list(reasons)
        case.request_id = None
        case.on_hold = False
        self._touch(f"case:{case.arrival_id}")
        self._decide(case.arrival_id, "ineligible", list(reasons))

    def _casework(self, e: Any, change) -> None:
        case = self._case_or_defer(e)
        if case is None:
            return
        if case.status in ("returned", "closed"):
            change(case)  # keep the record true, but nothing follows from it
            self._touch(f"case:{case.arrival_id}")
            self._decide(case.arrival_id, "ignored", [f"case_{case.status}"])
            return
        if change(case) is False or self._quiet:
            return
        self._assess(case)

    def _on_AsylumClaimDecided(self, e: ev.AsylumClaimDecided, s: Screening) -> None:
        def change(c: Case):
            c.asylum_outcome = e.outcome
        self._casework(e, change)

    def _claim(self, e: Any, book: str, ident: str, new: str | None, kind_open: bool) -> None:
        def change(c: Case):
            claims: dict = getattr(c, book)
            if kind_open:
                if ident in claims:
                    self._decide(c.arrival_id, "ignored", [f"{book[:-1]}_already_recorded"])
                    return False
                claims[ident] = "open"
            else:
                if claims.get(ident) != "open":
                    self._decide(c.arrival_id, "ignored",
                                 ["protection_claim_never_lodged" if book == "protection_claims"
                                  else "legal_challenge_never_filed"] if ident not in claims
                                 else [f"{book[:-1]}_already_resolved"])
                    return False
                claims[ident] = new
        self._casework(e, change)

    def _on_ProtectionClaimLodged(self, e: ev.ProtectionClaimLodged, s: Screening) -> None:
        self._claim(e, "protection_claims", e.claim_id, None, True)

    def _on_ProtectionClaimResolved(self, e: ev.ProtectionClaimResolved, s: Screening) -> None:
        self._claim(e, "protection_claims", e.claim_id, e.outcome, False)

    def _on_LegalChallengeFiled(self, e: ev.LegalChallengeFiled, s: Screening) -> None:
        self._claim(e, "challenges", e.challenge_id, None, True)

    def _on_LegalChallengeDecided(self, e: ev.LegalChallengeDecided, s: Screening) -> None:
        self._claim(e, "challenges", e.challenge_id, e.outcome, False)

    def _on_AgeAssessed(self, e: ev.AgeAssessed, s: Screening) -> None:
        def change(c: Case):
            c.assessed_minor = e.assessed_minor
        self._casework(e, change)

    def _on_PersonAbsconded(self, e: ev.PersonAbsconded, s: Screening) -> None:
        def change(c: Case):
            c.absconded = True
        self._casework(e, change)

    def _on_PersonDetained(self, e: ev.PersonDetained, s: Screening) -> None:
        def change(c: Case):
            if not c.absconded:
                self._decide(c.arrival_id, "ignored", ["person_not_absconded"])
                return False
            c.absconded = False
        self._casework(e, change)

    # ------------------------------------------------------------------ France and escorts
    def _open_pair(self, request_id: str) -> Pair | None:
        pair = self.pairs.get(request_id)
        if pair is None:
            self._decide(request_id, "ignored", ["unknown_request"])
            return None
        if not pair.open_request:
            self._decide(request_id, "ignored", ["request_executed" if pair.executed else f"request_{pair.broken}"])
            return None
        return pair

    def _on_ReturnRequestAnswered(self, e: ev.ReturnRequestAnswered, s: Screening) -> None:
        pair = self._open_pair(e.request_id)
        if pair is None:
            return
        if pair.answer is not None:
            self._decide(e.request_id, "ignored", ["request_already_answered"])
            return
        pair.answer = e.decision
        self._touch(f"pair:{pair.request_id}")
        if e.decision == "accepted":
            self._count("returns_accepted")
            self._decide(pair.request_id, "accepted", ["france_accepted"])
        else:
            self._count("returns_refused")
            self._decide(pair.request_id, "refused", ["france_refused"] + ([e.reason_code] if e.reason_code else []))
            self._break_pair(pair, "refused", case_outcome="france_refused")

    def _on_ReturnExecuted(self, e: ev.ReturnExecuted, s: Screening) -> None:
        pair = self._open_pair(e.request_id)
        if pair is None:
            return
        case = self.cases[pair.arrival_id]
        pair.executed = True
        self._touch(f"pair:{pair.request_id}", f"case:{case.arrival_id}", "meta")
        reasons = ["return_executed"]
        if case.on_hold:
            reasons.append("executed_despite_hold")
            self._alert("executed_despite_hold", "critical", pair.request_id,
                        "A removal on hold was executed: check the open claim or court order at once")
        if pair.answer is None:
            reasons.append("executed_before_answer")
        case.status, case.executed_request_id, case.request_id, case.on_hold = "returned", pair.request_id, None, False
        self._count("returns_executed")
        self.meta.cumulative_returns_executed += 1
        self._decide(pair.request_id, "executed", reasons)
        # a pair without a seat now has its seat owed: the matching pass gives it to the next
        # ready applicant

    def _on_ReturnFailed(self, e: ev.ReturnFailed, s: Screening) -> None:
        pair = self._open_pair(e.request_id)
        if pair is None:
            return
        case = self.cases[pair.arrival_id]
        self._decide(pair.request_id, "failed", [f"return_failed_{e.reason}"])
        self._break_pair(pair, "failed", case_outcome=None)
        if e.reason == "absconded":
            case.absconded = True
        case.status = "waiting"
        self._assess(case)
        if case.status in ("waiting", "blocked"):
            self._deadline(rules.request_window_closes(case.landed_at), "window", case.arrival_id)

    def _break_pair(self, pair: Pair, why: str, case_outcome: str | None) -> None:
        """A pair breaks: its week's place is freed, the seat goes back to the head of its queue."""
        pair.broken = why
        self._touch(f"pair:{pair.request_id}")
        w = self.week(pair.week)
        w.live_pairs -= 1
        self.quota.setdefault(w.week, QuotaDelta()).delta -= 1
        self._touch(f"week:{w.week}")
        self._dirty_weeks.add(w.week)
        case = self.cases[pair.arrival_id]
        case.request_id, case.on_hold = None, False
        if case_outcome:
            self._close_case(case, case_outcome)
        if pair.application_id:
            seat = self.seats[pair.application_id]
            if seat.status == "paired":
                seat.status, seat.request_id, seat.head = "waiting", None, True
                self._touch(f"seat:{seat.application_id}")
                self._decide(seat.application_id, "requeued", [f"pair_{why}", "back_to_head_of_queue"])

    def _withdraw(self, pair: Pair, reason: str, close_case: str | None) -> None:
        self._instruct("WithdrawReturn", request_id=pair.request_id, reason_code=reason)
        self._break_pair(pair, "withdrawn", case_outcome=close_case)

    # ------------------------------------------------------------------ admission side
    def _on_ExpressionOfInterestSubmitted(self, e: ev.ExpressionOfInterestSubmitted, s: Screening) -> None:
        if e.application_id in self.seats:
            self._decide(e.application_id, "ignored", ["application_already_submitted"])
            return
        seat = Seat(application_id=e.application_id, family_group_ref=e.family_group_ref,
                    nationality=e.nationality, date_of_birth=e.date_of_birth,
                    located_in_france_verified=e.located_in_france_verified, submitted_at=e.submitted_at)
        self.seats[seat.application_id] = seat
        self._touch(f"seat:{seat.application_id}")
        if seat.family_group_ref:
            self.families.setdefault(seat.family_group_ref, []).append(seat.application_id)
            self.families[seat.family_group_ref].sort(key=lambda a: (self.seats[a].submitted_at, a))
        refusals = rules.applicant_refusals(
            located_in_france_verified=e.located_in_france_verified, date_of_birth=e.date_of_birth,
            submitted_at=e.submitted_at, in_family_group=bool(e.family_group_ref))
        group_refused = [m for m in self._family(seat) if m.status == "refused" and m is not seat]
        if refusals:
            self._refuse_application(seat.application_id, *refusals)
        elif group_refused:
            self._refuse_application(seat.application_id, "family_member_refused")
        else:
            self._decide(seat.application_id, "blocked", ["awaiting_vetting"])
            seat.last_reasons = ["awaiting_vetting"]
        for queued in self.pending.pop(f"p:{seat.application_id}", []):
            self._touch(f"pending:p:{seat.application_id}")
            self._dispatch(ev.ANY_INBOUND.validate_python(queued["event"]), Screening(**queued["screening"]))

    def _defer_application(self, e: Any, s: Screening) -> None:
        """Kept, with what enforcement said of it, until the expression of interest arrives."""
        self.pending.setdefault(f"p:{e.application_id}", []).append(
            {"event": e.model_dump(mode="json"), "screening": s.model_dump()})
        self._touch(f"pending:p:{e.application_id}")
        self._decide(e.application_id, "deferred", ["application_not_yet_submitted"])

    def _on_ApplicationVetted(self, e: ev.ApplicationVetted, s: Screening) -> None:
        seat = self.seats.get(e.application_id)
        if seat is None:
            self._defer_application(e, s)
            return
        if seat.vetting is not None:
            self._decide(seat.application_id, "ignored", ["already_vetted"])
            return
        seat.vetting = e.security_outcome
        self._touch(f"seat:{seat.application_id}")
        refusals = []
        if e.security_outcome == "refused":
            refusals.append("security_refused")
        if s.arrival_ids:
            banned = any(self.cases.get(a) and self.cases[a].status == "returned" for a in s.arrival_ids) or any(
                self.cases.get(a) and self.cases[a].reentrant for a in s.arrival_ids)
            refusals.append("asylum_ban" if banned else "prior_irregular_entry")
        if s.report_ids:
            refusals.append("illegal_working_in_uk")
        if refusals:
            self._refuse_application(seat.application_id, *refusals)
        elif seat.status == "waiting":
            self._announce_seat(seat)

    def _announce_seat(self, seat: Seat) -> None:
        ready = self._group_ready(seat)
        reasons = ["vetted_clear", "located_in_france_verified"]
        if not ready:
            reasons = ["awaiting_family_members"]
            decision = "blocked"
        else:
            decision = "eligible"
        for member in self._family(seat) if ready else [seat]:
            if member.status == "waiting" and member.last_reasons != reasons:
                member.last_reasons = reasons
                self._touch(f"seat:{member.application_id}")
                self._decide(member.application_id, decision, reasons)

    def _on_ApplicationWithdrawn(self, e: ev.ApplicationWithdrawn, s: Screening) -> None:
        seat = self.seats.get(e.application_id)
        if seat is None:
            self._defer_application(e, s)
            return
        if seat.status in ("withdrawn", "refused", "offered", "arrived"):
            self._decide(seat.application_id, "ignored", [f"application_{seat.status}"])
            return
        self._drop_seats([seat], "withdrawn", ["application_withdrawn"])

    def _refuse_application(self, application_id: str, *reasons: str) -> None:
        seat = self.seats.get(application_id)
        if seat is None or seat.status in ("refused", "withdrawn", "offered", "arrived"):
            return
        dropped = [seat]
        # "A family group ... is admitted whole or not at all": a member refused refuses the group.
        for member in self._family(seat):
            if member is not seat and member.status in ("waiting", "paired"):
                dropped.append(member)
        self._drop_seats([seat], "refused", list(reasons))
        others = [m for m in dropped if m is not seat]
        if others:
            self._drop_seats(others, "refused", ["family_member_refused"])

    def _drop_seats(self, seats: list[Seat], status: str, reasons: list[str]) -> None:
        """The admission side of pairs drops: the next ready applicants take those seats in the
        same pairs; with none ready, an unexecuted return's request is withdrawn and its case
        queues again, while an executed return's seat stays owed."""
        orphaned: list[Pair] = []
        for seat in seats:
            pair = self.pairs.get(seat.request_id) if seat.status == "paired" and seat.request_id else None
            seat.status, seat.refusals, seat.request_id, seat.head = status, reasons, None, False
            self._touch(f"seat:{seat.application_id}")
            self._decide(seat.application_id, "refused_admission" if status == "refused" else "withdrawn", reasons)
            if pair is not None and pair.live:
                pair.application_id = None
                self._touch(f"pair:{pair.request_id}")
                orphaned.append(pair)
        if not orphaned:
            return
        orphaned.sort(key=lambda p: p.seq)
        open_pairs = [p for p in orphaned if not p.executed]
        for unit in rules.fill_seats(self._ready_units(), len(open_pairs)):
            for application_id in unit.application_ids:
                pair = open_pairs.pop(0)
                self._seat(pair, self.seats[application_id], ["replaces_dropped_applicant"])
        for pair in open_pairs:
            case = self.cases[pair.arrival_id]
            self._withdraw(pair, "admission_side_dropped", close_case=None)
            case.status = "waiting"
            self._assess(case)
            if case.status in ("waiting", "blocked"):
                self._deadline(rules.request_window_closes(case.landed_at), "window", case.arrival_id)

    def _on_AdmissionArrived(self, e: ev.AdmissionArrived, s: Screening) -> None:
        seat = self.seats.get(e.application_id)
        if seat is None or seat.status != "offered":
            self._decide(e.application_id, "ignored", ["no_offer" if seat is None or seat.status != "arrived"
                                                       else "already_arrived"])
            return
        seat.status = "arrived"
        self._touch(f"seat:{seat.application_id}")
        self._count("admissions_arrived")
        self._decide(seat.application_id, "admitted", ["arrived_under_offer"])

    # ------------------------------------------------------------------ enforcement facts
    def _on_IllegalWorkingEncounter(self, e: ev.IllegalWorkingEncounter, s: Screening) -> None:
        subjects = list(s.arrival_ids) + list(s.application_ids)
        if not subjects:
            self._decide(e.report_id, "ignored", ["no_biometric_match"])
            return
        self._count("illegal_working_matches")
        self._alert("illegal_working_match", "warning", e.report_id,
                    f"Illegal working encounter matches {len(subjects)} record(s) of the scheme")
        for arrival_id in s.arrival_ids:
            self._decide(arrival_id, "illegal_working_match", ["biometric_match"])
        for application_id in s.application_ids:
            self._decide(application_id, "illegal_working_match", ["biometric_match"])
            self._refuse_application(application_id, "illegal_working_in_uk")

    # ------------------------------------------------------------------ operator controls
    def _on_WeeklyCapSet(self, e: ev.WeeklyCapSet, s: Screening) -> None:
        w = self.week(e.week)
        before = self.cap_of(w)
        w.cap = e.cap
        if w.cap_alerted and w.live_pairs < e.cap:
            w.cap_alerted = False
        self._touch(f"week:{w.week}")
        self._dirty_weeks.add(w.week)
        reasons = [f"cap_{'raised' if e.cap > before else 'lowered' if e.cap < before else 'unchanged'}"]
        if e.cap < w.live_pairs:
            reasons.append("below_live_pairs_none_broken")
        self._decide(e.week, "cap_set", reasons)

    def _on_AdmissionsPaused(self, e: ev.AdmissionsPaused, s: Screening) -> None:
        self._set_paused(True, "admissions_paused")

    def _on_AdmissionsResumed(self, e: ev.AdmissionsResumed, s: Screening) -> None:
        self._set_paused(False, "admissions_resumed")

    def _set_paused(self, paused: bool, decision: str) -> None:
        if self.meta.paused == paused:
            self._decide("scheme", "ignored", [f"already_{'paused' if paused else 'running'}"])
            return
        self.meta.paused = paused
        self._touch("meta")
        self._dirty_weeks.add(iso_week(self.now))
        self._decide("scheme", decision, ["operator_control"])

    def _on_ClockTick(self, e: ev.ClockTick, s: Screening) -> None:
        pass

    # ------------------------------------------------------------------ the matching pass
    def _family(self, seat: Seat) -> list[Seat]:
        if not seat.family_group_ref:
            return [seat]
        return [self.seats[a] for a in self.families.get(seat.family_group_ref, [])]

    def _seat_ready(self, seat: Seat) -> bool:
        return seat.status == "waiting" and seat.vetting == "clear" and not seat.refusals

    def _group_ready(self, seat: Seat) -> bool:
        members = [m for m in self._family(seat) if m.status != "withdrawn"]
        return all(self._seat_ready(m) or m.status in ("paired", "offered", "arrived") for m in members) and any(
            self._seat_ready(m) for m in members)

    def _ready_units(self) -> list[rules.Unit]:
        prio = set(self.settings.priority_nationalities)
        units, seen_groups = [], set()
        for seat in self.seats.values():
            if not self._seat_ready(seat):
                continue
            ref = seat.family_group_ref
            if ref is None:
                units.append(rules.Unit((seat.application_id,), seat.nationality in prio, seat.submitted_at, seat.head))
                continue
            if ref in seen_groups:
                continue
            seen_groups.add(ref)
            members = [m for m in self._family(seat) if m.status != "withdrawn"]
            partly_paired = any(m.status in ("paired", "offered", "arrived") for m in members)
            if partly_paired:
                # the group was admitted as a whole already; a member who lost its return
                # re-pairs on its own
                for m in members:
                    if self._seat_ready(m):
                        units.append(rules.Unit((m.application_id,), m.nationality in prio, m.submitted_at,
                                                m.head, ref))
                continue
            if not all(self._seat_ready(m) for m in members):
                continue
            units.append(rules.Unit(tuple(m.application_id for m in members),
                                    any(m.nationality in prio for m in members),
                                    min(m.submitted_at for m in members),
                                    any(m.head for m in members), ref))
        return units

    def _ready_cases(self) -> list[rules.ReadyCase]:
        return [rules.ReadyCase(c.arrival_id, c.landed_at, c.reentrant) for c in self.cases.values()
                if c.status == "waiting" and rules.within_window(c.landed_at, self.now)]

    def _match(self) -> None:
        if self.meta.now is None:
            return
        # executed returns whose seat is owed go to the next ready applicants first
        owed = sorted((p for p in self.pairs.values() if p.live and p.executed and p.application_id is None),
                      key=lambda p: p.seq)
        if owed:
            units = self._ready_units()
            for unit in rules.fill_seats(units, len(owed)):
                for application_id in unit.application_ids:
                    self._seat(owed.pop(0), self.seats[application_id], ["takes_owed_seat_of_executed_return"])
        self._form_new_pairs()
        self._offer_ready()

    def _form_new_pairs(self) -> None:
        if self.meta.paused or not rules.scheme_open(self.now, self.settings.scheme_end):
            return
        week = self.week(iso_week(self.now))
        room = self.cap_of(week) - week.live_pairs
        if room <= 0:
            return
        units = self._ready_units()
        if not units:
            return
        cases = self._ready_cases()
        if not cases:
            return
        for unit, chosen in rules.next_pairs(cases, units, room):
            for application_id, ready_case in zip(unit.application_ids, chosen):
                self._form_pair(self.cases[ready_case.arrival_id], self.seats[application_id], week, unit)
        if week.live_pairs >= self.cap_of(week) and not week.cap_alerted:
            week.cap_alerted = True
            self._alert("cap_reached", "info", week.week, f"Week {week.week} has reached its cap of {self.cap_of(week)} pairs")

    def _form_pair(self, case: Case, seat: Seat, week: Week, unit: rules.Unit) -> None:
        self.meta.seq += 1
        request_id = str(derived_id(self._cause, "request", case.arrival_id))
        pair = Pair(request_id=request_id, arrival_id=case.arrival_id, application_id=None, week=week.week,
                    formed_at=self.now, seq=self.meta.seq)
        self.pairs[request_id] = pair
        week.live_pairs += 1
        q = self.quota.setdefault(week.week, QuotaDelta())
        q.delta += 1
        q.formed = True
        self._count("returns_requested", week.week)
        case.status, case.request_id = "paired", request_id
        self._touch("meta", f"case:{case.arrival_id}", f"pair:{request_id}", f"week:{week.week}")
        case_reasons = ["reentrant_first"] if case.reentrant else ["oldest_landed_at_first"]
        seat_reasons = ["priority_nationality" if unit.priority else "oldest_application_first"]
        if unit.head:
            seat_reasons.append("back_at_head_after_broken_pair")
        if unit.size > 1:
            seat_reasons.append(f"family_group_of_{unit.size}")
        self._decide(case.arrival_id, "paired", case_reasons + ["within_weekly_cap", f"week_{week.week}"])
        self._seat(pair, seat, seat_reasons + ["within_weekly_cap"])
        self._instruct("RequestReturn", request_id=request_id, arrival_id=case.arrival_id,
                       particulars=case.particulars,
                       reply_due_by=rules.reply_overdue_at(self.now).isoformat(), week=week.week)
        self._schedule_pair(pair)

    def _seat(self, pair: Pair, seat: Seat, reasons: list[str]) -> None:
        pair.application_id = seat.application_id
        seat.status, seat.request_id, seat.head = "paired", pair.request_id, False
        self._touch(f"pair:{pair.request_id}", f"seat:{seat.application_id}")
        self._decide(seat.application_id, "paired", reasons + [f"request_{pair.request_id}"])

    def _offer_ready(self) -> None:
        """"An admission is offered only once every return paired with it has been executed";
        a family's offers go out together once every return paired with the group is executed."""
        for pair in sorted((p for p in self.pairs.values() if p.live and p.executed and not p.offered
                            and p.application_id), key=lambda p: p.seq):
            if pair.offered:
                continue
            seat = self.seats[pair.application_id]
            members = [m for m in self._family(seat) if m.status not in ("withdrawn", "refused")]
            if any(m.status != "paired" for m in members if m.status not in ("offered", "arrived")):
                continue  # a member still waits for its return
            member_pairs = [self.pairs[m.request_id] for m in members if m.status == "paired"]
            if not all(p.executed for p in member_pairs):
                continue
            for p in member_pairs:
                self._offer(p)

    def _offer(self, pair: Pair) -> None:
        seat = self.seats[pair.application_id]
        pair.offered = True
        seat.status = "offered"
        self.meta.cumulative_admissions_offered += 1
        self._touch("meta", f"pair:{pair.request_id}", f"seat:{seat.application_id}")
        self._count("admissions_offered")
        self._instruct("OfferAdmission", application_id=seat.application_id, family_group_ref=seat.family_group_ref,
                       paired_request_ids=[pair.request_id], week=iso_week(self.now),
                       visa_valid_until=add_months(self.now, 3).isoformat())

    def _check_imbalance(self) -> None:
        m = self.meta
        if rules.imbalance(m.cumulative_returns_executed, m.cumulative_admissions_offered, self.settings.imbalance_margin):
            if not m.imbalance_alerted:
                m.imbalance_alerted = True
                self._touch("meta")
                self._alert("imbalance", "warning", "scheme",
                            f"Returns executed ({m.cumulative_returns_executed}) and admissions offered "
                            f"({m.cumulative_admissions_offered}) differ by more than {self.settings.imbalance_margin}")
        elif m.imbalance_alerted:
            m.imbalance_alerted = False
            self._touch("meta")
