"""The dead-letter path every service shares: one DeadLetter and one Alert per bad record.

The contract's "Dead letters fit": a DeadLetter never exceeds 512 KiB, so a raw value over
256 KiB is cut to its first 256 KiB, with `raw_size` and `raw_sha256` of the whole value.
Ids are derived from the record's place in the log (topic:partition:offset), so a record
dead-lettered again after a crash gives the same events. Nothing here quotes a field value.
"""
from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timezone

from shared.events.outbound import Alert, DeadLetter
from shared.ids import derived_id

RAW_KEEP = 256 * 1024

# processing_error is our own failure on a record that passed intake: critical.
SEVERITY = {"processing_error": "critical"}


def record_place(topic: str, partition: int, offset: int) -> str:
    return f"{topic}:{partition}:{offset}"


def dead_letter(*, topic: str, partition: int, offset: int, raw: bytes | None, code: str, detail: str,
                when: datetime | None, producer: str) -> tuple[DeadLetter, Alert]:
    """The DeadLetter for one record and the Alert that goes with it.

    `when` is the service's event-time now; a service that has seen no event yet has no now,
    and then the Unix epoch is used rather than the wall clock (time is event time)."""
    raw = raw or b""
    place = record_place(topic, partition, offset)
    when = when or datetime.fromtimestamp(0, tz=timezone.utc)
    letter = DeadLetter(
        event_id=derived_id(place, "dead-letter"), occurred_at=when, producer=producer,
        source_topic=topic, partition=partition, offset=offset, error_code=code,
        error_detail=detail[:1000],
        raw_value_b64=base64.b64encode(raw[:RAW_KEEP]).decode("ascii"),
        raw_size=len(raw), raw_sha256=hashlib.sha256(raw).hexdigest(),
    )
    alert = Alert(
        event_id=derived_id(place, "dead-letter-alert"), occurred_at=when, producer=producer,
        alert_id=str(derived_id(place, "alert")), severity=SEVERITY.get(code, "warning"),
        kind="dead_letter", subject_ref=place,
        message=f"{code} on {topic} partition {partition} offset {offset}",
    )
    return letter, alert

