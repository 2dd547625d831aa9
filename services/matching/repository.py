"""The repository: matching's aggregates in memory, mapped to and from Redis records.

Keys: `meta`, `case:<arrival_id>`, `seat:<application_id>`, `pair:<request_id>`,
`week:<week>`, `pending:a:<arrival_id>` / `pending:p:<application_id>` (events about a subject
not known yet). Pairs that are over (broken, or executed and offered) leave memory: only the
reason a later event about them is ignored stays, so the live state does not grow with the
scheme's history. Likewise a closed case that no other arrival of the same person is linked
to, and a single applicant's seat that is over (refused, withdrawn, arrived): only the little a
later event about them needs stays (a re-entrant flag, a final status).
"""
from __future__ import annotations

from datetime import datetime
from collections.abc import Mapping
from typing import Any

from services.matching.case import Case
from services.matching.ledger import Ledger
from services.matching.pair import Pair
from services.matching.seat import FamilyGroup, Seat
from services.matching.week import Week


class UnreadableRecord(ValueError):
    """A stored record matching cannot read: raised, so the runtime dead-letters the batch's
    record rather than decide on a half-read state."""


class Repository:
    def __init__(self) -> None:
        self.ledger = Ledger()
        self.cases: dict[str, Case] = {}
        self.seats: dict[str, Seat] = {}
        self.pairs: dict[str, Pair] = {}  # live pairs, and those still owed an offer
        self.ended: dict[str, str] = {}  # request_id -> why news about it changes nothing
        self.closed_cases: dict[str, bool] = {}  # arrival_id -> re-entrant, of cases retired
        self.closed_seats: dict[str, str] = {}  # application_id -> final status, of seats retired
        self.returned: dict[str, tuple[str, datetime]] = {}  # arrival_id -> (request_id, executed_at)
        self.weeks: dict[str, Week] = {}
        self.pending: dict[str, list[dict]] = {}
        self.families: dict[str, FamilyGroup] = {}
        self.dirty: set[str] = set()
        self._final: dict[str, dict] = {}  # last records of pairs that left memory this batch

    # ---- loading -------------------------------------------------------------------------
    def load(self, records: Mapping[str, dict], quota: dict[str, dict[str, int]] | None = None) -> None:
        """All the stored records at once (a restart hands them over chunk by chunk: Loading)."""
        from services.matching.loading import Loading  # it builds a Repository

        self.__init__()
        loading = Loading(self)
        loading.add(records)
        loading.finish(quota)

    # ---- reading and writing ---------------------------------------------------------------
    def week(self, name: str) -> Week:
        if name not in self.weeks:
            self.weeks[name] = Week(week=name)
        return self.weeks[name]

    def family(self, seat: Seat) -> list[Seat]:
        if not seat.family_group_ref or seat.family_group_ref not in self.families:
            return [seat]
        return [self.seats[a] for a in self.families[seat.family_group_ref].members]

    def join_family(self, seat: Seat) -> None:
        ref = seat.family_group_ref
        if ref:
            group = self.families.setdefault(ref, FamilyGroup(ref))
            group.add(seat.application_id, key=lambda a: (self.seats[a].submitted_at, a))

    def known_arrival(self, arrival_id: str) -> bool:
        return arrival_id in self.cases or arrival_id in self.closed_cases or arrival_id in self.returned

    def over_status(self, arrival_id: str) -> str | None:
        """"closed" or "returned" for a case that left memory."""
        return "returned" if arrival_id in self.returned else "closed" if arrival_id in self.closed_cases else None

    def known_application(self, application_id: str) -> bool:
        return application_id in self.seats or application_id in self.closed_seats

    def end_pair(self, pair: Pair) -> None:
        """A pair that is over leaves memory; its record stays in Redis for the rebuild."""
        if pair.over and pair.request_id in self.pairs:
            del self.pairs[pair.request_id]
            self._leave(f"pair:{pair.request_id}", pair)
            self.ended[pair.request_id] = pair.ignore_reason() or "request_over"

    def retire_case(self, case: Case) -> None:
        if case.arrival_id in self.cases and self.keep_what_stays_of_case(case):
            del self.cases[case.arrival_id]
            self._leave(f"case:{case.arrival_id}", case)

    def keep_what_stays_of_case(self, case: Case) -> bool:
        """A returned case leaves its return (for a later re-entry); a closed one, unless another
        arrival of the same person is linked to it (a late return of that one may still make
        it a re-entry), leaves whether it was a re-entrant. False: the case stays in memory."""
        if case.status == "returned" and case.executed_request_id and case.executed_at:
            self.returned[case.arrival_id] = (case.executed_request_id, case.executed_at)
        elif case.status == "closed" and not case.same_person:
            self.closed_cases[case.arrival_id] = case.reentrant
        else:
            return False
        return True

    def retire_seat(self, seat: Seat) -> None:
        if seat.application_id in self.seats and self.keep_what_stays_of_seat(seat):
            del self.seats[seat.application_id]
            self._leave(f"seat:{seat.application_id}", seat)

    def keep_what_stays_of_seat(self, seat: Seat) -> bool:
        """A single applicant's seat that is over (refused, withdrawn, arrived) leaves its status.
        False: the seat stays in memory."""
        if seat.status in ("refused", "withdrawn", "arrived") and not seat.family_group_ref:
            self.closed_seats[seat.application_id] = seat.status
            return True
        return False

    def _leave(self, key: str, obj: Any) -> None:
        self._final[key] = obj.to_dict()
        self.dirty.add(key)

    def touch(self, *keys: str) -> None:
        self.dirty.update(keys)

    def take_changes(self, keep: tuple[str, ...] = ()) -> dict[str, dict | None]:
        """The records changed since last asked (None: delete), but for the `keep` keys
        (left dirty, taken later)."""
        kept = {k for k in keep if k in self.dirty}
        out = self.records(self.dirty - kept if kept else self.dirty)
        self.dirty = kept
        self._final.clear()
        return out

    def records(self, keys: set[str]) -> dict[str, dict | None]:
        out: dict[str, dict | None] = {}
        final = self._final
        books = {"case": self.cases, "seat": self.seats, "pair": self.pairs, "week": self.weeks}
        for key in sorted(keys):
            obj: Any
            if key in final:
                out[key] = final[key]
                continue
            if key == "meta":
                out[key] = self.ledger.to_dict()
                continue
            kind, _, ident = key.partition(":")
            if kind == "pending":
                out[key] = {"events": self.pending[ident]} if self.pending.get(ident) else None
                continue
            obj = books[kind].get(ident)
            out[key] = obj.to_dict() if obj is not None else None
        return out

    def all_keys(self) -> set[str]:
        return ({"meta"} | {f"case:{a}" for a in self.cases} | {f"seat:{a}" for a in self.seats}
                | {f"pair:{r}" for r in self.pairs} | {f"week:{w}" for w in self.weeks}
                | {f"pending:{k}" for k in self.pending})

