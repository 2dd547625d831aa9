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
from typing import Any, Callable

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
    def load(self, records: dict[str, dict], quota: dict[str, dict[str, int]] | None = None) -> None:
        self.__init__()
        readers: dict[str, Callable[[str, dict], None]] = {
            "meta": lambda _, d: setattr(self, "ledger", Ledger.from_dict(d)),
            "case": lambda i, d: self._load_case(Case.from_dict(d)),
            "seat": lambda i, d: self._load_seat(Seat.from_dict(d)),
            "pair": lambda i, d: self._load_pair(Pair.from_dict(d)),
            "week": lambda i, d: self.weeks.__setitem__(i, Week.from_dict(d)),
            "pending": lambda i, d: self.pending.__setitem__(i, [_pending_item(x) for x in d["events"]]),
        }
        for key in sorted(records):
            kind, _, ident = key.partition(":")
            reader = readers.get(kind)
            if reader is None:
                raise UnreadableRecord(f"unknown record kind {kind!r}")
            try:
                reader(ident, records[key])
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise UnreadableRecord(f"{kind} record: {exc.__class__.__name__}") from None
        for seat in self.seats.values():
            self.join_family(seat)
        for name, counters in (quota or {}).items():
            # Redis's quota counters are the authority for the cap
            if "live" in counters:
                self.week(name).live_pairs = int(counters["live"])

    def _load_case(self, case: Case) -> None:
        self.cases[case.arrival_id] = case
        self.retire_case(case, loading=True)

    def _load_seat(self, seat: Seat) -> None:
        self.seats[seat.application_id] = seat
        self.retire_seat(seat, loading=True)

    def _load_pair(self, pair: Pair) -> None:
        if pair.over:
            self.ended[pair.request_id] = pair.ignore_reason() or "request_over"
        else:
            self.pairs[pair.request_id] = pair

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

    def retire_case(self, case: Case, loading: bool = False) -> None:
        """A returned case leaves its return (for a later re-entry); a closed one, unless another
        arrival of the same person is linked to it (a late return of that one may still make
        it a re-entry), leaves whether it was a re-entrant."""
        if case.arrival_id not in self.cases:
            return
        if case.status == "returned" and case.executed_request_id and case.executed_at:
            self.returned[case.arrival_id] = (case.executed_request_id, case.executed_at)
        elif case.status == "closed" and not case.same_person:
            self.closed_cases[case.arrival_id] = case.reentrant
        else:
            return
        del self.cases[case.arrival_id]
        if not loading:
            self._leave(f"case:{case.arrival_id}", case)

    def retire_seat(self, seat: Seat, loading: bool = False) -> None:
        """A single applicant's seat that is over (refused, withdrawn, arrived) leaves its status."""
        if seat.status in ("refused", "withdrawn", "arrived") and not seat.family_group_ref \
                and seat.application_id in self.seats:
            del self.seats[seat.application_id]
            self.closed_seats[seat.application_id] = seat.status
            if not loading:
                self._leave(f"seat:{seat.application_id}", seat)

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


def _pending_item(item: dict) -> dict:
    # older records kept the bare event for casework; now every entry is {event, screening}
    return item if "event" in item else {"event": item, "screening": {}}
