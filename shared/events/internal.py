"""Envelopes on our internal topics (ours to shape; outside parties never read them)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic_core import to_json


class AcceptedEvent(BaseModel):
    """intake -> enforcement: an inbound event that passed signature, type and schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_topic: str
    source_partition: int
    source_offset: int
    event: dict


def accepted_json(source_topic: str, source_partition: int, source_offset: int, event: dict) -> bytes:
    """`AcceptedEvent(...).model_dump_json()`'s bytes without building and validating the model
    for every record intake accepts (the event is the document screen() already checked)."""
    return to_json({"source_topic": source_topic, "source_partition": source_partition,
                    "source_offset": source_offset, "event": event}, inf_nan_mode="null")


class Screening(BaseModel):
    """What enforcement's biometric index knows of the person behind an event.

    Ids only: the biometric itself never leaves enforcement. For an ArrivalRecorded, the
    person's earlier arrivals and their applications; for an ApplicationVetted, the person's
    arrivals and illegal-working reports; for an IllegalWorkingEncounter, the person's
    arrivals and applications.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    arrival_ids: list[str] = []
    application_ids: list[str] = []
    report_ids: list[str] = []
    # enforcement in shards (shared/shards.py): the person's bucket, which names the shard that
    # holds them; matching carries it onto a RecordBan. None when enforcement is one instance.
    person_bucket: int | None = None


class ScreenedEvent(BaseModel):
    """enforcement -> matching."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_topic: str
    # where intake read it: with its time, the key of the merge that keeps one intake's order
    # when enforcement runs in shards (shared/shards.py)
    source_partition: int | None = None
    source_offset: int | None = None
    event: dict
    screening: Screening = Screening()


class Particulars(BaseModel):
    """What a readmission request needs of the person, and nothing more (Art 16 minimisation)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    family_name: str
    given_names: str
    date_of_birth: str | None
    nationality: str
    landed_at: str
    landing_point: str
    vessel_ref: str


class ArrivalParticulars(Particulars):
    """intake -> transfer (internal.intake.particulars.v1, keyed by arrival_id): kept apart from
    the accepted events so that enforcement and matching decide without names or dates of birth."""

    arrival_id: str
    occurred_at: str  # the arrival event's own time: transfer's clock for the retention period


def particulars_json(arrival) -> bytes:
    """`ArrivalParticulars(...).model_dump_json()`'s bytes for an accepted ArrivalRecorded, its
    fields in the model's order, without building and validating the model per arrival."""
    born = arrival.date_of_birth
    return to_json({
        "family_name": arrival.family_name, "given_names": arrival.given_names,
        "date_of_birth": born.isoformat() if born else None, "nationality": arrival.nationality,
        "landed_at": arrival.landed_at.isoformat(), "landing_point": arrival.landing_point,
        "vessel_ref": arrival.vessel_ref, "arrival_id": arrival.arrival_id,
        "occurred_at": arrival.occurred_at.isoformat()})


class Instruction(BaseModel):
    """matching -> transfer / enforcement: something to tell an outside party.

    `instruction_id` is derived from the event that caused it, and becomes the outbound
    event's `event_id`, so an instruction repeated after a crash publishes the same event.
    kinds: RequestReturn, WithdrawReturn, OfferAdmission (transfer); RecordBan (enforcement);
    DayBegan (transfer: matching's clock moved into a new day, `day`, so particulars past their
    retention by matching's clock are forgotten).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    instruction_id: str
    kind: str
    occurred_at: str
    caused_by: str
    rule_version: str
    request_id: str | None = None
    arrival_id: str | None = None
    particulars: Particulars | None = None  # no longer sent: transfer keeps the particulars itself
    reply_due_by: str | None = None
    week: str | None = None
    reason_code: str | None = None
    application_id: str | None = None
    family_group_ref: str | None = None
    paired_request_ids: list[str] = []
    person_bucket: int | None = None  # RecordBan: the person's bucket, for enforcement's shards
    visa_valid_until: str | None = None
    returned_request_id: str | None = None
    day: str | None = None
