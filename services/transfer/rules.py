"""What transfer tells France for each instruction from matching, as pure decisions.

The request register ("request:<request_id>", "offer:<application_id>") remembers what has been
sent, so each request is sent once, withdrawn once, and each application offered once. The
register holds ids, weeks and times only: the person's particulars go to France and nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError

from shared import topics
from shared.events.base import Event
from shared.events.internal import Instruction, Particulars
from shared.events.outbound import AdmissionOffered, Decision, ReturnRequested, ReturnRequestWithdrawn
from shared.ids import derived_id
from shared.timeutil import parse_time

PRODUCER = "oioo-transfer"


class BadInstruction(ValueError):
    """An instruction transfer cannot act on. The message names fields, never their values."""


@dataclass(frozen=True)
class Publish:
    topic: str
    key: str
    event: Event


@dataclass(frozen=True)
class Outcome:
    """What to publish and which register entry to write (None: leave the register as it is)."""

    publish: tuple[Publish, ...] = ()
    record: tuple[str, dict] | None = None
    note: str = ""


def request_key(request_id: str) -> str:
    return f"request:{request_id}"


def offer_key(application_id: str) -> str:
    return f"offer:{application_id}"


def register_key(instruction: Instruction) -> str | None:
    """The register entry an instruction is about."""
    if instruction.kind in ("RequestReturn", "WithdrawReturn") and instruction.request_id:
        return request_key(instruction.request_id)
    if instruction.kind == "OfferAdmission" and instruction.application_id:
        return offer_key(instruction.application_id)
    return None


def decide(entry: dict | None, instruction: Instruction, particulars: Particulars | None = None) -> Outcome:
    """The outcome of one instruction, given the register entry it is about (or None) and, for
    a return request, the person's particulars."""
    if instruction.kind == "RequestReturn":
        return request_return(entry, instruction, particulars)
    if instruction.kind == "WithdrawReturn":
        return withdraw_return(entry, instruction)
    if instruction.kind == "OfferAdmission":
        return offer_admission(entry, instruction)
    return Outcome(note=f"kind {instruction.kind} is not transfer's")


def check_request(instruction: Instruction) -> None:
    """A RequestReturn names its request, the arrival, the reply date and the week."""
    _require(instruction, "request_id", "arrival_id", "reply_due_by", "week")


def request_return(entry: dict | None, instruction: Instruction, p: Particulars | None) -> Outcome:
    """Treaty: a return request must reach France within 14 days of landing (matching checked
    the window); the UK sends France only what a readmission needs (Art 16). One per request.
    Without particulars (a replay after they expired) the register is rebuilt and nothing sent."""
    check_request(instruction)
    if entry is not None and entry.get("requested_by") != instruction.instruction_id:
        return Outcome(note=f"request {instruction.request_id} was already sent")
    requested = None if p is None else _build(
        ReturnRequested, event_id=instruction.instruction_id, occurred_at=instruction.occurred_at,
        producer=PRODUCER, request_id=instruction.request_id, arrival_id=instruction.arrival_id,
        family_name=p.family_name, given_names=p.given_names, date_of_birth=p.date_of_birth,
        nationality=p.nationality, landed_at=p.landed_at, landing_point=p.landing_point,
        vessel_ref=p.vessel_ref, reply_due_by=instruction.reply_due_by, week=instruction.week,
    )
    record = {
        "arrival_id": instruction.arrival_id,
        "week": instruction.week,
        "status": "requested",
        "requested_at": instruction.occurred_at,
        "reply_due_by": instruction.reply_due_by,
        "requested_by": instruction.instruction_id,
    }
    return Outcome(
        publish=(
            *([Publish(topics.LIAISON_UK_RETURN_REQUESTS, instruction.request_id, requested)] if requested else []),
            _decision(instruction, instruction.request_id, "requested", ["pair_formed"]),
        ),
        record=(request_key(instruction.request_id), record),
        note=f"request {instruction.request_id} sent",
    )


def withdraw_return(entry: dict | None, instruction: Instruction) -> Outcome:
    """Treaty: a blocker upheld, or still open 90 days after landing, withdraws the request and
    the pair breaks; a dropped seat with no applicant ready withdraws an unexecuted return.
    Only a request that was sent can be withdrawn, and only once."""
    _require(instruction, "request_id", "reason_code")
    if entry is None:
        return Outcome(note=f"request {instruction.request_id} was never sent; nothing to withdraw")
    if entry.get("status") == "withdrawn" and entry.get("withdrawn_by") != instruction.instruction_id:
        return Outcome(note=f"request {instruction.request_id} was already withdrawn")
    withdrawn = _build(
        ReturnRequestWithdrawn, event_id=instruction.instruction_id,
        occurred_at=instruction.occurred_at, producer=PRODUCER,
        request_id=instruction.request_id, reason_code=instruction.reason_code,
    )
    record = {**entry, "status": "withdrawn", "withdrawn_at": instruction.occurred_at,
              "reason_code": instruction.reason_code, "withdrawn_by": instruction.instruction_id}
    return Outcome(
        publish=(
            Publish(topics.LIAISON_UK_RETURN_REQUESTS, instruction.request_id, withdrawn),
            _decision(instruction, instruction.request_id, "withdrawn", [instruction.reason_code]),
        ),
        record=(request_key(instruction.request_id), record),
        note=f"request {instruction.request_id} withdrawn",
    )


def offer_admission(entry: dict | None, instruction: Instruction) -> Outcome:
    """Treaty: an admission is offered only once every return paired with it has been executed
    (matching decides when); one AdmissionOffered per application, naming its paired returns."""
    _require(instruction, "application_id", "week", "visa_valid_until")
    if not instruction.paired_request_ids:
        raise BadInstruction("OfferAdmission without paired_request_ids")
    if entry is not None and entry.get("offered_by") != instruction.instruction_id:
        return Outcome(note=f"application {instruction.application_id} was already offered")
    offered = _build(
        AdmissionOffered, event_id=instruction.instruction_id, occurred_at=instruction.occurred_at,
        producer=PRODUCER, application_id=instruction.application_id,
        family_group_ref=instruction.family_group_ref,
        paired_request_ids=list(instruction.paired_request_ids), week=instruction.week,
        visa_valid_until=instruction.visa_valid_until,
    )
    record = {
        "family_group_ref": instruction.family_group_ref,
        "paired_request_ids": list(instruction.paired_request_ids),
        "week": instruction.week,
        "offered_at": instruction.occurred_at,
        "visa_valid_until": instruction.visa_valid_until,
        "offered_by": instruction.instruction_id,
    }
    return Outcome(
        publish=(
            Publish(topics.LIAISON_UK_ADMISSION_NOTICES, instruction.application_id, offered),
            _decision(instruction, instruction.application_id, "offered", ["paired_returns_executed"]),
        ),
        record=(offer_key(instruction.application_id), record),
        note=f"application {instruction.application_id} offered",
    )


def _decision(instruction: Instruction, subject_ref: str, decision: str, reasons: list[str]) -> Publish:
    event = _build(
        Decision, event_id=derived_id(instruction.instruction_id, "decision"),
        occurred_at=instruction.occurred_at, producer=PRODUCER, subject_ref=subject_ref,
        decision=decision, reasons=reasons, rule_version=instruction.rule_version,
        caused_by=instruction.caused_by,
    )
    return Publish(topics.OPS_AUDIT, subject_ref, event)


def _require(instruction: Instruction, *names: str) -> None:
    missing = [n for n in names if getattr(instruction, n) in (None, "")]
    if missing:
        raise BadInstruction(f"{instruction.kind} without {', '.join(missing)}")
    try:
        parse_time(instruction.occurred_at)
    except ValueError:
        raise BadInstruction(f"{instruction.kind} occurred_at is not a time with offset") from None


def _build(model: type[Event], **fields) -> Event:
    try:
        return model(**fields)
    except ValidationError as exc:  # pydantic's message would quote the values: name the fields only
        locs = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors(include_input=False)})
        raise BadInstruction(f"{model.__name__} rejects {', '.join(locs)}") from None


def particulars_expire(landed_at: datetime, retention_days: int) -> datetime:
    """Personal data is kept only while a request may still need it: a return may be requested
    only within 14 days of landing, so the particulars go `retention_days` after landing."""
    return landed_at + timedelta(days=retention_days)
