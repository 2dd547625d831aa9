"""Histories several integration tests drive through the contract's topics."""
from __future__ import annotations

from datetime import datetime

from shared import topics as T
from tests.support import factory as f
from tests.support.factory import DAY, HOUR


async def returned_and_offered(client, observer, arrival_id: str, application_id: str, at: datetime) -> str:
    """An arrival paired with a new applicant, accepted by France, executed and offered; the request id."""
    await client.publish(T.BORDER_ARRIVALS, f.arrival(arrival_id, at))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi(application_id, at + HOUR))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted(application_id, at + HOUR))
    [req] = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id=arrival_id)
    await client.publish(T.LIAISON_FR_DECISIONS, f.answer(req["request_id"], at + DAY))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=req["request_id"], decision="accepted")
    await client.publish(T.TRANSFERS_MOVEMENTS, f.executed(req["request_id"], at + 2 * DAY))
    await observer.wait_for(T.LIAISON_UK_ADMISSION_NOTICES, "AdmissionOffered", application_id=application_id)
    return req["request_id"]
