"""A case: the return side's record of one arrival — its blockers, holds, window and re-entry."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import ClassVar

from services.matching import rules
from services.matching.model import Record

OPEN = ("waiting", "blocked")


@dataclass
class Case(Record):
    datetimes: ClassVar = ("landed_at", "recorded_at", "executed_at")

    arrival_id: str
    landed_at: datetime
    departed_from: str
    claimed_minor: bool
    asylum_claimed: bool
    recorded_at: datetime | None = None  # the ArrivalRecorded's own time
    same_person: list[str] = field(default_factory=list)  # the person's other arrivals
    reentrant: bool = False
    returned_request_id: str | None = None  # the earlier return that makes this a re-entry
    assessed_minor: bool | None = None
    asylum_outcome: str | None = None
    protection_claims: dict[str, str] = field(default_factory=dict)  # claim_id -> open|refused|upheld
    challenges: dict[str, str] = field(default_factory=dict)  # challenge_id -> open|dismissed|upheld
    absconded: bool = False
    status: str = "waiting"  # waiting | blocked | paired | returned | closed
    request_id: str | None = None  # the live request, while paired
    executed_request_id: str | None = None
    executed_at: datetime | None = None
    on_hold: bool = False
    closed_reason: str | None = None
    last_reasons: list[str] = field(default_factory=list)
    person_bucket: int | None = None  # enforcement's shard of the person (shared/shards.py), for its bans

    # ---- what the rules see
    def facts(self, scheme_start: date) -> rules.CaseFacts:
        claims, challenges = self.protection_claims.values(), self.challenges.values()
        return rules.CaseFacts(
            claimed_minor=self.claimed_minor, assessed_minor=self.assessed_minor,
            asylum_claimed=self.asylum_claimed, asylum_outcome=self.asylum_outcome,
            open_protection_claims=sum(1 for v in claims if v == "open") if claims else 0,
            open_challenges=sum(1 for v in challenges if v == "open") if challenges else 0,
            upheld_protection_claim="upheld" in claims, upheld_challenge="upheld" in challenges,
            absconded=self.absconded, departed_from=self.departed_from, landed_at=self.landed_at,
            reentrant=self.reentrant, scheme_start=scheme_start,
        )

    def judge(self, scheme_start: date, now: datetime, first: bool = False,
              window_days: int = rules.REQUEST_WINDOW.days) -> rules.Verdict:
        return rules.judge_case(self.facts(scheme_start), status=self.status, on_hold=self.on_hold,
                                last_reasons=self.last_reasons, now=now, first=first, window_days=window_days)

    @property
    def queued(self) -> bool:
        return self.status in OPEN

    @property
    def ready(self) -> bool:
        """In the queue of ready returns (the window is watched by its deadline)."""
        return self.status == "waiting"

    @property
    def order(self) -> tuple:
        return rules.return_order(self.reentrant, self.landed_at, self.arrival_id)

    @property
    def over(self) -> bool:
        return self.status in ("returned", "closed")

    # ---- changes of standing (invariants kept here, announced by the caller)
    def block(self, reasons: tuple[str, ...]) -> None:
        assert self.queued
        self.status, self.last_reasons = "blocked", [r for r in reasons if r != "reentrant_after_return"]

    def make_eligible(self) -> None:
        assert self.queued
        self.status, self.last_reasons = "waiting", []

    def close(self, reasons: tuple[str, ...]) -> None:
        self.status, self.closed_reason, self.last_reasons = "closed", reasons[0], list(reasons)
        self.request_id, self.on_hold = None, False

    def pair_with(self, request_id: str) -> None:
        assert self.ready, "only a ready case is paired"
        self.status, self.request_id = "paired", request_id

    def requeue(self) -> None:
        """A pair broke without closing the case: it waits again (and is judged again)."""
        self.status, self.request_id, self.on_hold = "waiting", None, False

    def unpair(self) -> None:
        self.request_id, self.on_hold = None, False

    def hold(self, reasons: tuple[str, ...]) -> None:
        self.on_hold, self.last_reasons = True, list(reasons)

    def lift(self) -> None:
        self.on_hold, self.last_reasons = False, []

    def returned(self, request_id: str, at: datetime) -> None:
        self.status, self.executed_request_id, self.executed_at = "returned", request_id, at
        self.request_id, self.on_hold = None, False

    def link(self, arrival_id: str) -> None:
        if arrival_id != self.arrival_id and arrival_id not in self.same_person:
            self.same_person.append(arrival_id)

    def reentry_after(self, request_id: str, executed_at: datetime) -> bool:
        """This arrival re-enters after the return `request_id` executed at `executed_at` (judged
        by event time)."""
        return not self.reentrant and rules.is_reentry(self.landed_at, executed_at)

    def mark_reentrant(self, returned_request_id: str) -> None:
        self.reentrant, self.returned_request_id = True, returned_request_id
