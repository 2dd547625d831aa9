"""The four fields every event carries, and the field types the contract fixes."""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, StringConstraints

from shared.limits import FIRST_YEAR, LAST_YEAR, MAX_STRING


def _in_range(value: date) -> date:
    # The calendar year as written: comparing instants could overflow near the ends of the
    # calendar (year 1 with a positive offset), and a year is what the contract bounds.
    # Messages never quote the value: it may be a date of birth.
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"must be between {FIRST_YEAR}-01-01 and {LAST_YEAR}-12-31")
    return value


def _existing_week(value: str) -> str:
    year, number = value.split("-W")
    if not FIRST_YEAR <= int(year) <= LAST_YEAR:
        raise ValueError(f"must be a week of the years {FIRST_YEAR} to {LAST_YEAR}")
    try:
        date.fromisocalendar(int(year), int(number), 1)
    except ValueError:
        raise ValueError("that ISO week does not exist") from None
    return value


# Dates and times the system can do arithmetic on: year 9999 plus a 14-day window overflows.
EventDate = Annotated[date, AfterValidator(_in_range)]
EventTime = Annotated[AwareDatetime, AfterValidator(_in_range)]
BiometricId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
# The pattern admits 2025-W53; only the calendar knows that 2025 has 52 weeks.
IsoWeek = Annotated[str, StringConstraints(pattern=r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$"),
                    AfterValidator(_existing_week)]
Ref = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Event(BaseModel):
    """Common envelope: `event_id` is the de-duplication key, `occurred_at` the event's own time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID
    event_type: str
    occurred_at: AwareDatetime
    producer: Annotated[str, StringConstraints(min_length=1, max_length=200)]

    def to_json(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class Inbound(Event):
    """What an outside party sends: the contract's limits hold for every field of every type.

    Outbound events do not take these limits (a DeadLetter carries up to 256 KiB of raw value);
    their times derive from inbound ones, which these limits keep in range.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=MAX_STRING, allow_inf_nan=False)

    occurred_at: EventTime


def at(dt: datetime) -> datetime:
    """Guard: every time we put on the wire is timezone-aware."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime on the wire")
    return dt
