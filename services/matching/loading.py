"""Loading: matching's repository rebuilt from its stored records, handed over a chunk at a time
as Redis gives them and in any order (a record twice is the same record twice).

Each record is decoded once, as it comes. What leaves memory (a closed or returned case, a
single applicant's seat that is over, a pair that is over) keeps only what stays of it at once;
what stays in memory is put into the repository in the order of its keys when every record is
in, as a load of all the records at once puts it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.matching.case import Case
from services.matching.ledger import Ledger
from services.matching.pair import Pair
from services.matching.repository import Repository, UnreadableRecord
from services.matching.seat import Seat
from services.matching.week import Week


class Loading:
    def __init__(self, repo: Repository):
        self.repo = repo  # a new, empty one
        self._staying: dict[str, Any] = {}  # key -> what it holds, of what stays in memory

    def add(self, records: Mapping[str, dict]) -> None:
        for key in records:
            kind, _, ident = key.partition(":")
            read = _READ.get(kind)
            if read is None:
                raise UnreadableRecord(f"unknown record kind {kind!r}")
            try:
                stays = read(self.repo, records[key])
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise UnreadableRecord(f"{kind} record: {exc.__class__.__name__}") from None
            if stays is not None:
                self._staying[key] = stays

    def finish(self, quota: dict[str, dict[str, int]] | None = None) -> Repository:
        repo = self.repo
        for key in sorted(self._staying):
            kind, _, ident = key.partition(":")
            _PUT[kind](repo, ident, self._staying[key])
        self._staying = {}
        for seat in repo.seats.values():
            repo.join_family(seat)
        for name, counters in (quota or {}).items():
            # Redis's quota counters are the authority for the cap
            if "live" in counters:
                repo.week(name).live_pairs = int(counters["live"])
        return repo


def _case(repo: Repository, record: dict) -> Case | None:
    case = Case.from_dict(record)
    return None if repo.keep_what_stays_of_case(case) else case


def _seat(repo: Repository, record: dict) -> Seat | None:
    seat = Seat.from_dict(record)
    return None if repo.keep_what_stays_of_seat(seat) else seat


def _pair(repo: Repository, record: dict) -> Pair | None:
    pair = Pair.from_dict(record)
    if pair.over:
        repo.ended[pair.request_id] = pair.ignore_reason() or "request_over"
        return None
    return pair


def _pending(repo: Repository, record: dict) -> list[dict]:
    # older records kept the bare event for casework; now every entry is {event, screening}
    return [item if "event" in item else {"event": item, "screening": {}} for item in record["events"]]


_READ = {"meta": lambda repo, d: Ledger.from_dict(d), "case": _case, "seat": _seat, "pair": _pair,
         "week": lambda repo, d: Week.from_dict(d), "pending": _pending}
_PUT = {
    "meta": lambda repo, ident, ledger: setattr(repo, "ledger", ledger),
    "case": lambda repo, ident, case: repo.cases.__setitem__(case.arrival_id, case),
    "seat": lambda repo, ident, seat: repo.seats.__setitem__(seat.application_id, seat),
    "pair": lambda repo, ident, pair: repo.pairs.__setitem__(pair.request_id, pair),
    "week": lambda repo, ident, week: repo.weeks.__setitem__(ident, week),
    "pending": lambda repo, ident, items: repo.pending.__setitem__(ident, items),
}
