"""The biometric index, as pure decisions over plain values: no I/O, no clock, no Redis.

One `Person` is everything enforcement knows under one biometric: the arrivals, applications
and illegal-working reports made under it (ids only, first-seen order) and the ban, if any.
The biometric itself is the index's key, so a Person does not repeat it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from shared.events.internal import Instruction
from shared.timeutil import parse_time

BAN_REASON = "reentry_after_return"
ALREADY_BANNED = "already_banned"

# The events that carry a biometric_id: the list of the person's records each one joins, and
# the field that names the record.
INDEXED = {
    "ArrivalRecorded": ("arrival_ids", "arrival_id"),
    "ApplicationVetted": ("application_ids", "application_id"),
    "IllegalWorkingEncounter": ("report_ids", "report_id"),
}


class Person(NamedTuple):
    """Immutable and small (a tuple); index.py holds most people in a smaller form still."""

    arrival_ids: tuple[str, ...] = ()
    application_ids: tuple[str, ...] = ()
    report_ids: tuple[str, ...] = ()
    banned_request_id: str | None = None
    # The RecordBan instruction that recorded the ban: deciding that same instruction again
    # (a batch redelivered before it was committed) must give the same ban, not "already_banned".
    ban_instruction_id: str | None = None

    def to_record(self, biometric_id: str) -> dict:
        return {
            "biometric_id": biometric_id,
            "arrival_ids": list(self.arrival_ids),
            "application_ids": list(self.application_ids),
            "report_ids": list(self.report_ids),
            "banned_request_id": self.banned_request_id,
            "ban_instruction_id": self.ban_instruction_id,
        }

    @classmethod
    def from_record(cls, record: dict) -> "Person":
        return cls(
            tuple(record.get("arrival_ids", ())),
            tuple(record.get("application_ids", ())),
            tuple(record.get("report_ids", ())),
            record.get("banned_request_id"),
            record.get("ban_instruction_id"),
        )


NOBODY = Person()  # what the index knows of a biometric it has never seen
# Where each indexed event's id goes in a Person.
_SLOT = {event_type: Person._fields.index(attr) for event_type, (attr, _) in INDEXED.items()}


class Screening(NamedTuple):
    """The person's OTHER records that an event is screened against (the ids only)."""

    arrival_ids: tuple[str, ...] = ()
    application_ids: tuple[str, ...] = ()
    report_ids: tuple[str, ...] = ()


NOTHING_KNOWN = Screening()


def person_key(biometric_id: str) -> str:
    """The index key of a biometric: a digest of it, so the raw id is never a Redis key."""
    return "person:" + hashlib.sha256(biometric_id.encode("ascii")).hexdigest()


def screening_for(person: Person | None, event_type: str, own_id: str) -> Screening:
    """The OTHER records of the person behind an event, as the index stands before it.

    Treaty: an applicant who "entered or tried to enter the UK irregularly, is banned, or is
    found working illegally in the UK is refused", and "a person who was returned and comes
    back" is banned. So an arrival is screened against the person's earlier arrivals and their
    applications; an application against their arrivals and illegal-working reports; an
    illegal-working report against their arrivals and applications.
    """
    if person is None:
        return NOTHING_KNOWN
    if event_type == "ArrivalRecorded":
        arrivals = person.arrival_ids
        if own_id in arrivals:
            arrivals = tuple(i for i in arrivals if i != own_id)
        return Screening(arrivals, person.application_ids)
    if event_type == "ApplicationVetted":
        return Screening(person.arrival_ids, (), person.report_ids)
    if event_type == "IllegalWorkingEncounter":
        return Screening(person.arrival_ids, person.application_ids)
    return NOTHING_KNOWN


def indexed(person: Person, event_type: str, own_id: str) -> Person:
    """The person with the event's own id added to its list, once, in first-seen order."""
    slot = _SLOT[event_type]
    ids = person[slot]
    if own_id in ids:
        return person
    fields = list(person)
    fields[slot] = ids + (own_id,)
    return Person._make(fields)


@dataclass(frozen=True)
class BanOrder:
    """A RecordBan instruction, checked: everything a ban and its Decision need."""

    instruction_id: UUID
    arrival_id: str
    returned_request_id: str
    occurred_at: datetime
    caused_by: str
    rule_version: str


def ban_order(instruction: Instruction) -> BanOrder:
    """Check a RecordBan instruction; ValueError names the first thing wrong (never a value)."""
    if not instruction.arrival_id:
        raise ValueError("RecordBan without arrival_id")
    if not instruction.returned_request_id:
        raise ValueError("RecordBan without returned_request_id")
    try:
        instruction_id = UUID(instruction.instruction_id)
    except ValueError:
        raise ValueError("RecordBan instruction_id is not a UUID") from None
    try:
        occurred_at = parse_time(instruction.occurred_at)
    except ValueError:
        raise ValueError("RecordBan occurred_at is not an RFC 3339 time with offset") from None
    return BanOrder(instruction_id, instruction.arrival_id, instruction.returned_request_id,
                    occurred_at, instruction.caused_by, instruction.rule_version)


@dataclass(frozen=True)
class BanOutcome:
    person: Person
    record_ban: bool  # publish AsylumBanRecorded (once per person)
    reasons: list[str] = field(default_factory=list)


def ban_outcome(person: Person, order: BanOrder) -> BanOutcome:
    """Treaty: a person who was returned and comes back is banned from the UK asylum system.

    One ban record per person, however many times they come back; every re-entry is still a
    Decision "banned", the later ones with reason "already_banned".
    """
    instruction_id = str(order.instruction_id)
    if person.banned_request_id is None:
        banned = person._replace(banned_request_id=order.returned_request_id,
                                 ban_instruction_id=instruction_id)
        return BanOutcome(banned, True, [BAN_REASON])
    if person.ban_instruction_id == instruction_id:
        return BanOutcome(person, True, [BAN_REASON])
    return BanOutcome(person, False, [BAN_REASON, ALREADY_BANNED])
