"""What the exchange decides, as typed domain events. The wiring turns each into its wire
event; `identity` is the stable part of its outbound id (with the causing event's id)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar


_NAMES: dict[type, tuple[str, ...]] = {}  # each event class's field names, read once


def _fields(obj) -> dict:
    names = _NAMES.get(type(obj))
    if names is None:
        names = _NAMES[type(obj)] = tuple(f.name for f in fields(obj))
    return {name: getattr(obj, name) for name in names}


@dataclass(frozen=True)
class DomainEvent:
    kind: ClassVar[str]

    @property
    def identity(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def data(self) -> dict:
        return _fields(self)


@dataclass(frozen=True)
class Decided(DomainEvent):
    """A Decision on ops.audit.v1."""

    kind: ClassVar[str] = "decision"
    subject_ref: str
    decision: str
    reasons: list[str]

    @property
    def identity(self) -> tuple[str, ...]:
        return ("decision", self.subject_ref, self.decision)


@dataclass(frozen=True)
class Alerted(DomainEvent):
    kind: ClassVar[str] = "alert"
    alert: str
    severity: str
    subject_ref: str
    message: str

    @property
    def identity(self) -> tuple[str, ...]:
        return ("alert", self.alert, self.subject_ref)

    @property
    def data(self) -> dict:
        return {"kind": self.alert, "severity": self.severity, "subject_ref": self.subject_ref,
                "message": self.message}


@dataclass(frozen=True)
class Instruction(DomainEvent):
    """Something transfer or enforcement must tell an outside party."""

    kind: ClassVar[str] = "instruction"
    name: ClassVar[str]

    @property
    def subject(self) -> str:
        raise NotImplementedError

    @property
    def identity(self) -> tuple[str, ...]:
        return ("instruction", self.name, self.subject)

    @property
    def data(self) -> dict:
        return {"kind": self.name, **_fields(self)}


@dataclass(frozen=True)
class ReturnRequestOrdered(Instruction):
    name: ClassVar[str] = "RequestReturn"
    request_id: str
    arrival_id: str
    reply_due_by: str
    week: str

    @property
    def subject(self) -> str:
        return self.request_id


@dataclass(frozen=True)
class WithdrawalOrdered(Instruction):
    name: ClassVar[str] = "WithdrawReturn"
    request_id: str
    reason_code: str

    @property
    def subject(self) -> str:
        return self.request_id


@dataclass(frozen=True)
class AdmissionOfferOrdered(Instruction):
    name: ClassVar[str] = "OfferAdmission"
    application_id: str
    family_group_ref: str | None
    paired_request_ids: list[str]
    week: str
    visa_valid_until: str

    @property
    def subject(self) -> str:
        return self.application_id


@dataclass(frozen=True)
class BanOrdered(Instruction):
    name: ClassVar[str] = "RecordBan"
    arrival_id: str
    returned_request_id: str
    person_bucket: int | None = None  # the shard of enforcement that holds the person

    @property
    def subject(self) -> str:
        return self.arrival_id


@dataclass(frozen=True)
class DayBegan(Instruction):
    """Matching's clock moved into a new day (UTC). Transfer keeps an arrival's particulars
    until matching's clock, not the particulars' own, is past their retention: in a backlog or
    a replay intake's particulars run weeks ahead of the pairs that need them."""
    name: ClassVar[str] = "DayBegan"
    day: str

    @property
    def subject(self) -> str:
        return self.day


@dataclass(frozen=True)
class BalanceChanged(DomainEvent):
    """A week's figures changed: its WeeklyBalance is published again."""

    kind: ClassVar[str] = "balance"
    figures: dict = field(default_factory=dict)

    @property
    def identity(self) -> tuple[str, ...]:
        return ("balance", self.figures["week"])

    @property
    def data(self) -> dict:
        return dict(self.figures)
