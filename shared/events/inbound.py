"""Inbound events (the system consumes), one discriminated union per contract topic."""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, TypeAdapter

from shared import topics
from shared.limits import JSON_SAFE_INT
from shared.events.base import BiometricId, CountryCode, Event, EventDate, EventTime, Inbound, IsoWeek, Ref


# border.arrivals.v1
class ArrivalInHouse(Inbound):
    """ArrivalRecorded as it travels inside the house (intake -> enforcement -> matching): the
    names and date of birth go to transfer alone (internal.intake.particulars.v1), and the
    biometric stays with enforcement, so matching decides without either."""

    event_type: Literal["ArrivalRecorded"]
    arrival_id: Ref
    biometric_id: BiometricId | None = None
    nationality: CountryCode
    claimed_minor: bool
    landed_at: EventTime
    landing_point: str
    vessel_ref: str
    departed_from: CountryCode
    rescued_at_sea: bool
    asylum_claimed: bool


class ArrivalRecorded(ArrivalInHouse):
    """As the terminals send it: with the biometric, the names and the date of birth."""

    biometric_id: BiometricId
    family_name: str
    given_names: str
    date_of_birth: EventDate | None


# casework.updates.v1
class AsylumClaimDecided(Inbound):
    event_type: Literal["AsylumClaimDecided"]
    arrival_id: Ref
    outcome: Literal["withdrawn", "inadmissible", "admitted_for_consideration"]


class ProtectionClaimLodged(Inbound):
    event_type: Literal["ProtectionClaimLodged"]
    arrival_id: Ref
    claim_id: Ref
    kind: Literal["human_rights", "trafficking", "further_submissions"]


class ProtectionClaimResolved(Inbound):
    event_type: Literal["ProtectionClaimResolved"]
    arrival_id: Ref
    claim_id: Ref
    outcome: Literal["refused", "upheld"]


class LegalChallengeFiled(Inbound):
    event_type: Literal["LegalChallengeFiled"]
    arrival_id: Ref
    challenge_id: Ref
    kind: Literal["judicial_review", "injunction", "appeal"]


class LegalChallengeDecided(Inbound):
    event_type: Literal["LegalChallengeDecided"]
    arrival_id: Ref
    challenge_id: Ref
    outcome: Literal["dismissed", "upheld"]


class AgeAssessed(Inbound):
    event_type: Literal["AgeAssessed"]
    arrival_id: Ref
    assessed_minor: bool


class PersonDetained(Inbound):
    event_type: Literal["PersonDetained"]
    arrival_id: Ref


class PersonAbsconded(Inbound):
    event_type: Literal["PersonAbsconded"]
    arrival_id: Ref


# admissions.applications.v1
class ExpressionOfInterestSubmitted(Inbound):
    event_type: Literal["ExpressionOfInterestSubmitted"]
    application_id: Ref
    family_group_ref: Ref | None
    nationality: CountryCode
    date_of_birth: EventDate
    located_in_france_verified: bool
    submitted_at: EventTime
    # added 2026-11-29: when any member gives it, the group is complete at that many members
    family_group_size: Annotated[int, Field(ge=1, le=JSON_SAFE_INT)] | None = None


class ApplicationVetted(Inbound):
    event_type: Literal["ApplicationVetted"]
    application_id: Ref
    biometric_id: BiometricId
    security_outcome: Literal["clear", "refused"]


class ApplicationWithdrawn(Inbound):
    event_type: Literal["ApplicationWithdrawn"]
    application_id: Ref


# liaison.fr.decisions.v1
class ReturnRequestAnswered(Inbound):
    event_type: Literal["ReturnRequestAnswered"]
    request_id: Ref
    decision: Literal["accepted", "refused"]
    reason_code: str | None


# transfers.movements.v1
class ReturnExecuted(Inbound):
    event_type: Literal["ReturnExecuted"]
    request_id: Ref
    flight_ref: str


class ReturnFailed(Inbound):
    event_type: Literal["ReturnFailed"]
    request_id: Ref
    reason: Literal["absconded", "medical", "disruption", "refused_boarding"]


class AdmissionArrived(Inbound):
    event_type: Literal["AdmissionArrived"]
    application_id: Ref


# enforcement.illegal-working.v1
class IllegalWorkingEncounter(Inbound):
    event_type: Literal["IllegalWorkingEncounter"]
    report_id: Ref
    biometric_id: BiometricId
    employer_ref: str


# ops.control.v1
class WeeklyCapSet(Inbound):
    event_type: Literal["WeeklyCapSet"]
    week: IsoWeek
    cap: Annotated[int, Field(ge=0, le=JSON_SAFE_INT)]


class AdmissionsPaused(Inbound):
    event_type: Literal["AdmissionsPaused"]
    reason: str


class AdmissionsResumed(Inbound):
    event_type: Literal["AdmissionsResumed"]
    reason: str


class ClockTick(Inbound):
    event_type: Literal["ClockTick"]


CaseworkEvent = Union[
    AsylumClaimDecided, ProtectionClaimLodged, ProtectionClaimResolved, LegalChallengeFiled,
    LegalChallengeDecided, AgeAssessed, PersonDetained, PersonAbsconded,
]
ApplicationEvent = Union[ExpressionOfInterestSubmitted, ApplicationVetted, ApplicationWithdrawn]
MovementEvent = Union[ReturnExecuted, ReturnFailed, AdmissionArrived]
ControlEvent = Union[WeeklyCapSet, AdmissionsPaused, AdmissionsResumed, ClockTick]

InboundEvent = Union[
    ArrivalRecorded, CaseworkEvent, ApplicationEvent, ReturnRequestAnswered, MovementEvent,
    IllegalWorkingEncounter, ControlEvent,
]

_TOPIC_UNIONS = {
    topics.BORDER_ARRIVALS: ArrivalRecorded,
    topics.CASEWORK_UPDATES: CaseworkEvent,
    topics.ADMISSIONS_APPLICATIONS: ApplicationEvent,
    topics.LIAISON_FR_DECISIONS: ReturnRequestAnswered,
    topics.TRANSFERS_MOVEMENTS: MovementEvent,
    topics.ENFORCEMENT_ILLEGAL_WORKING: IllegalWorkingEncounter,
    topics.OPS_CONTROL: ControlEvent,
}

TOPIC_ADAPTERS: dict[str, TypeAdapter] = {
    topic: TypeAdapter(Annotated[union, Field(discriminator="event_type")])
    if getattr(union, "__origin__", None) is Union else TypeAdapter(union)
    for topic, union in _TOPIC_UNIONS.items()
}

# Any inbound event, whatever topic it came from (used on the internal topics).
ANY_INBOUND: TypeAdapter = TypeAdapter(Annotated[InboundEvent, Field(discriminator="event_type")])


HouseEvent = Union[
    ArrivalInHouse, CaseworkEvent, ApplicationEvent, ReturnRequestAnswered, MovementEvent,
    IllegalWorkingEncounter, ControlEvent,
]
# What the internal topics carry after intake (enforcement and matching read these).
ANY_IN_HOUSE: TypeAdapter = TypeAdapter(Annotated[HouseEvent, Field(discriminator="event_type")])

# The event that names the subject an inbound event is about (key for internal routing).
def subject_of(event: Event) -> str:
    # the instance's own fields: a missing attribute on a pydantic model takes its slow path
    # (about 20 us per miss for a ClockTick, against 0.2 us for an arrival)
    fields = event.__dict__
    for name in ("arrival_id", "application_id", "request_id", "report_id", "week"):
        value = fields.get(name)
        if value:
            return str(value)
    return event.event_type
