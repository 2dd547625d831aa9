"""Contract events as an outside party would send them (plain dicts, JSON-ready)."""
from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta, timezone

T0 = datetime(2025, 9, 1, 9, 0, tzinfo=timezone.utc)  # a Monday, inside the scheme


def ts(dt: datetime) -> str:
    return dt.isoformat()


def bio(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def _base(event_type: str, at: datetime, producer: str = "test") -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": event_type, "occurred_at": ts(at), "producer": producer}


def arrival(arrival_id: str, at: datetime, *, landed_at: datetime | None = None, person: str | None = None,
            claimed_minor=False, asylum_claimed=False, departed_from="FRA", nationality="IRQ") -> dict:
    return {**_base("ArrivalRecorded", at), "arrival_id": arrival_id, "biometric_id": bio(person or arrival_id),
            "family_name": "Doe", "given_names": "Sam", "date_of_birth": "1990-01-01",
            "nationality": nationality, "claimed_minor": claimed_minor, "landed_at": ts(landed_at or at),
            "landing_point": "Dover", "vessel_ref": "V-1", "departed_from": departed_from,
            "rescued_at_sea": False, "asylum_claimed": asylum_claimed}


def casework(event_type: str, arrival_id: str, at: datetime, **fields) -> dict:
    return {**_base(event_type, at), "arrival_id": arrival_id, **fields}


def eoi(application_id: str, at: datetime, *, nationality="SYR", family=None, dob="1995-05-05",
        verified=True, submitted_at: datetime | None = None) -> dict:
    return {**_base("ExpressionOfInterestSubmitted", at), "application_id": application_id,
            "family_group_ref": family, "nationality": nationality, "date_of_birth": dob,
            "located_in_france_verified": verified, "submitted_at": ts(submitted_at or at)}


def vetted(application_id: str, at: datetime, *, person: str | None = None, outcome="clear") -> dict:
    return {**_base("ApplicationVetted", at), "application_id": application_id,
            "biometric_id": bio(person or application_id), "security_outcome": outcome}


def withdrawn(application_id: str, at: datetime) -> dict:
    return {**_base("ApplicationWithdrawn", at), "application_id": application_id}


def answer(request_id: str, at: datetime, decision="accepted", reason_code=None) -> dict:
    return {**_base("ReturnRequestAnswered", at), "request_id": request_id, "decision": decision,
            "reason_code": reason_code}


def executed(request_id: str, at: datetime) -> dict:
    return {**_base("ReturnExecuted", at), "request_id": request_id, "flight_ref": "FL-1"}


def failed(request_id: str, at: datetime, reason="medical") -> dict:
    return {**_base("ReturnFailed", at), "request_id": request_id, "reason": reason}


def admission_arrived(application_id: str, at: datetime) -> dict:
    return {**_base("AdmissionArrived", at), "application_id": application_id}


def illegal_working(report_id: str, at: datetime, person: str) -> dict:
    return {**_base("IllegalWorkingEncounter", at), "report_id": report_id, "biometric_id": bio(person),
            "employer_ref": "EMP-1"}


def cap_set(week: str, cap: int, at: datetime) -> dict:
    return {**_base("WeeklyCapSet", at), "week": week, "cap": cap}


def paused(at: datetime, reason="operator") -> dict:
    return {**_base("AdmissionsPaused", at), "reason": reason}


def resumed(at: datetime, reason="operator") -> dict:
    return {**_base("AdmissionsResumed", at), "reason": reason}


def tick(at: datetime) -> dict:
    return _base("ClockTick", at)


DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
