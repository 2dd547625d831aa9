"""Which messages travel on which topic: the one map the runtime declares its publishers from
and the AsyncAPI documents (`make docs`) are written from."""
from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from shared import topics as T
from shared.events.inbound import TOPIC_ADAPTERS
from shared.events.internal import AcceptedEvent, ArrivalParticulars, Instruction, ScreenedEvent
from shared.events.outbound import (AdmissionOffered, Alert, AsylumBanRecorded, DeadLetter, Decision,
                                    ReturnRequested, ReturnRequestWithdrawn, WeeklyBalance)

ReturnRequestMessage = Annotated[Union[ReturnRequested, ReturnRequestWithdrawn], Field(discriminator="event_type")]

# What we publish, by topic (a type FastStream can describe).
PUBLISHED: dict[str, Any] = {
    T.INTAKE_ACCEPTED: AcceptedEvent,
    T.INTAKE_PARTICULARS: ArrivalParticulars,
    T.ENFORCEMENT_SCREENED: ScreenedEvent,
    T.MATCHING_INSTRUCTIONS: Instruction,
    T.LIAISON_UK_RETURN_REQUESTS: ReturnRequestMessage,
    T.LIAISON_UK_ADMISSION_NOTICES: AdmissionOffered,
    T.ENFORCEMENT_BANS: AsylumBanRecorded,
    T.OPS_BALANCE: WeeklyBalance,
    T.OPS_ALERTS: Alert,
    T.OPS_AUDIT: Decision,
    T.OPS_DEAD_LETTERS: DeadLetter,
}


def adapter(topic: str) -> TypeAdapter:
    """The validator of the messages on a topic, inbound (the contract's unions) or ours."""
    if topic in TOPIC_ADAPTERS:
        return TOPIC_ADAPTERS[topic]
    return TypeAdapter(PUBLISHED[topic])
