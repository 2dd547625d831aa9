"""Reading the internal topics' envelopes: parsed once, the event inside validated once.

What enforcement reads (an `AcceptedEvent` from intake) and what matching reads (a
`ScreenedEvent` from enforcement) carry an in-house event as a plain JSON object. The reference
reading validates the envelope from JSON, then the event from the envelope's dict: two passes
of pydantic over the same event. Here the record is parsed once by pydantic's own JSON parser;
an envelope of exactly the shape our services write (its fields of their JSON types, nothing
else) needs no pydantic pass of its own, and the event is validated once, from the same dict
the reference validates it from. Any other record (not JSON, a field missing or of another
type, a field too many) is read the reference way, so whatever raised before raises the same
(pydantic's ValidationError, never quoting a value).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from pydantic_core import from_json

from shared.events.base import Event
from shared.events.inbound import ANY_IN_HOUSE
from shared.events.internal import AcceptedEvent, ScreenedEvent, Screening

_NOTHING_KNOWN = Screening()  # shared, as enforcement shares its own: frozen, and only read
_NOTHING_KNOWN_JSON = _NOTHING_KNOWN.model_dump()
_WHERE = (int, type(None))  # a screened event's source partition and offset, as the fast path takes them


class Accepted(NamedTuple):
    """What enforcement reads: the event as intake forwarded it (`document`) and validated."""

    source_topic: str
    source_partition: int
    source_offset: int
    document: dict
    event: Event


class Screened(NamedTuple):
    """What matching reads: enforcement's screening and the validated event."""

    source_topic: str
    screening: Screening
    event: Event


def _parsed(raw: Any) -> Any:
    # No NaN or Infinity: the reference parser takes them, so a record holding one is left to it.
    try:
        return from_json(raw, allow_inf_nan=False)
    except Exception:  # noqa: BLE001 - not JSON as we write it: the reference reading decides
        return None


def read_accepted(raw: bytes) -> Accepted:
    """`AcceptedEvent.model_validate_json(raw)`, then `ANY_IN_HOUSE.validate_python` of its event."""
    doc = _parsed(raw)
    if (type(doc) is dict and len(doc) == 4 and type(doc.get("source_topic")) is str
            and type(doc.get("source_partition")) is int and type(doc.get("source_offset")) is int
            and type(doc.get("event")) is dict):
        document = doc["event"]
        return Accepted(doc["source_topic"], doc["source_partition"], doc["source_offset"], document,
                        ANY_IN_HOUSE.validate_python(document))
    envelope = AcceptedEvent.model_validate_json(raw)
    return Accepted(envelope.source_topic, envelope.source_partition, envelope.source_offset, envelope.event,
                    ANY_IN_HOUSE.validate_python(envelope.event))


def read_screened(raw: bytes, prepare: Callable[[dict], dict] = dict) -> Screened:
    """`ScreenedEvent.model_validate_json(raw)`, then `ANY_IN_HOUSE.validate_python` of
    `prepare(a copy of its event)` (what the reader fills in before validating)."""
    doc = _parsed(raw)
    if (type(doc) is dict and type(doc.get("source_topic")) is str and type(doc.get("event")) is dict
            and type(doc.get("source_partition")) in _WHERE and type(doc.get("source_offset")) in _WHERE
            and len(doc) == 2 + ("screening" in doc) + ("source_partition" in doc) + ("source_offset" in doc)):
        screening = doc.get("screening", _NOTHING_KNOWN)
        if screening == _NOTHING_KNOWN_JSON:  # the usual case, a screening that knows nothing
            screening = _NOTHING_KNOWN
        elif screening is not _NOTHING_KNOWN:
            if type(screening) is not dict:
                return _read_screened(raw, prepare)
            screening = Screening.model_validate(screening)
        return Screened(doc["source_topic"], screening, ANY_IN_HOUSE.validate_python(prepare(doc["event"])))
    return _read_screened(raw, prepare)


def _read_screened(raw: bytes, prepare: Callable[[dict], dict]) -> Screened:
    envelope = ScreenedEvent.model_validate_json(raw)
    return Screened(envelope.source_topic, envelope.screening,
                    ANY_IN_HOUSE.validate_python(prepare(dict(envelope.event))))
