"""Outbound events (the system publishes), fixed by the contract."""
from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import AwareDatetime

from shared.events.base import BiometricId, CountryCode, Event, IsoWeek


class ReturnRequested(Event):
    event_type: Literal["ReturnRequested"] = "ReturnRequested"
    request_id: str
    arrival_id: str
    family_name: str
    given_names: str
    date_of_birth: date | None
    nationality: CountryCode
    landed_at: AwareDatetime
    landing_point: str
    vessel_ref: str
    reply_due_by: AwareDatetime
    week: IsoWeek


class ReturnRequestWithdrawn(Event):
    event_type: Literal["ReturnRequestWithdrawn"] = "ReturnRequestWithdrawn"
    request_id: str
    reason_code: str


class AdmissionOffered(Event):
    event_type: Literal["AdmissionOffered"] = "AdmissionOffered"
    application_id: str
    family_group_ref: str | None
    paired_request_ids: list[str]
    week: IsoWeek
    visa_valid_until: AwareDatetime


class AsylumBanRecorded(Event):
    event_type: Literal["AsylumBanRecorded"] = "AsylumBanRecorded"
    biometric_id: BiometricId
    reason: Literal["reentry_after_return"] = "reentry_after_return"
    returned_request_id: str


class WeeklyBalance(Event):
    event_type: Literal["WeeklyBalance"] = "WeeklyBalance"
    week: IsoWeek
    cap: int
    pairs_formed: int
    returns_requested: int
    returns_accepted: int
    returns_refused: int
    returns_executed: int
    admissions_offered: int
    admissions_arrived: int
    reentries_detected: int
    illegal_working_matches: int
    cumulative_returns_executed: int
    cumulative_admissions_offered: int
    admissions_paused: bool


class Alert(Event):
    event_type: Literal["Alert"] = "Alert"
    alert_id: str
    severity: Literal["info", "warning", "critical"]
    kind: str
    subject_ref: str
    message: str


class Decision(Event):
    event_type: Literal["Decision"] = "Decision"
    subject_ref: str
    decision: str
    reasons: list[str]
    rule_version: str
    caused_by: str


class DeadLetter(Event):
    event_type: Literal["DeadLetter"] = "DeadLetter"
    source_topic: str
    partition: int
    offset: int
    error_code: Literal["too_large", "signature", "unauthorised_producer", "not_json", "unknown_type",
                        "schema", "implausible_time", "processing_error"]
    error_detail: str
    raw_value_b64: str
    raw_size: int
    raw_sha256: str
