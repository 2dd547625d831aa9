"""The four fields every event carries, and the field types the contract fixes."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints

BiometricId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
IsoWeek = Annotated[str, StringConstraints(pattern=r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$")]
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


def at(dt: datetime) -> datetime:
    """Guard: every time we put on the wire is timezone-aware."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime on the wire")
    return dt
