"""Matching's state, as plain records (what Redis stores, one JSON record each)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime
from typing import Any, ClassVar


def _dump(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


class Record:
    datetimes: ClassVar[tuple[str, ...]] = ()
    dates: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict:
        return _dump(asdict(self))

    @classmethod
    def from_dict(cls, data: dict):
        kwargs = {}
        names = {f.name for f in fields(cls)}
        for k, v in data.items():
            if k not in names:
                continue
            if v is not None and k in cls.datetimes:
                v = datetime.fromisoformat(v)
            elif v is not None and k in cls.dates:
                v = date.fromisoformat(v)
            kwargs[k] = v
        return cls(**kwargs)


@dataclass
class Case(Record):
    """The return side's record of one arrival."""

    datetimes: ClassVar = ("landed_at",)

    arrival_id: str
    landed_at: datetime
    departed_from: str
    claimed_minor: bool
    asylum_claimed: bool
    particulars: dict
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
    on_hold: bool = False
    closed_reason: str | None = None
    last_reasons: list[str] = field(default_factory=list)


@dataclass
class Seat(Record):
    """The admission side: one application is one seat."""

    datetimes: ClassVar = ("submitted_at",)
    dates: ClassVar = ("date_of_birth",)

    application_id: str
    family_group_ref: str | None
    nationality: str
    date_of_birth: date
    located_in_france_verified: bool
    submitted_at: datetime
    vetting: str | None = None  # clear | refused
    refusals: list[str] = field(default_factory=list)
    status: str = "waiting"  # waiting | paired | offered | arrived | refused | withdrawn
    request_id: str | None = None  # the pair this seat sits in
    head: bool = False
    last_reasons: list[str] = field(default_factory=list)


@dataclass
class Pair(Record):
    """One case + one seat, formed together under the week's cap; its request_id names it."""

    datetimes: ClassVar = ("formed_at",)

    request_id: str
    arrival_id: str
    application_id: str | None
    week: str
    formed_at: datetime
    seq: int
    answer: str | None = None  # accepted | refused
    executed: bool = False
    broken: str | None = None  # why it broke: refused | lapsed | failed | withdrawn
    overdue_alerted: bool = False
    offered: bool = False

    @property
    def live(self) -> bool:
        return self.broken is None

    @property
    def open_request(self) -> bool:
        return self.broken is None and not self.executed


@dataclass
class Week(Record):
    week: str
    cap: int | None = None
    live_pairs: int = 0
    returns_requested: int = 0
    returns_accepted: int = 0
    returns_refused: int = 0
    returns_executed: int = 0
    admissions_offered: int = 0
    admissions_arrived: int = 0
    reentries_detected: int = 0
    illegal_working_matches: int = 0
    cap_alerted: bool = False


@dataclass
class Meta(Record):
    datetimes: ClassVar = ("now",)

    now: datetime | None = None
    paused: bool = False
    cumulative_returns_executed: int = 0
    cumulative_admissions_offered: int = 0
    imbalance_alerted: bool = False
    seq: int = 0
