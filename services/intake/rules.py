"""Screening an inbound message, as the contract orders the checks. Pure: no I/O."""
from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import ValidationError

from shared.events.base import Event
from shared.events.inbound import TOPIC_ADAPTERS
from shared.signing import Keyring, verify
from shared.topics import INBOUND_EVENT_TYPES


@dataclass(frozen=True)
class Accepted:
    event: Event
    document: dict  # the value as the producer sent it, schema-checked


@dataclass(frozen=True)
class Rejected:
    error_code: str  # not_json | unknown_type | schema | signature | unauthorised_producer
    error_detail: str


def screen(keyring: Keyring, topic: str, headers: dict, value: bytes | None) -> Accepted | Rejected:
    """Signature on the raw bytes first, then the key's topics, then JSON, type and schema."""
    raw = value or b""
    bad_signature = verify(keyring, topic, headers, raw)
    if bad_signature:
        return Rejected(*bad_signature)
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return Rejected("not_json", f"value is not UTF-8 JSON: {exc.__class__.__name__}: {exc}"[:300])
    if not isinstance(document, dict):
        return Rejected("schema", f"value must be a JSON object, got {type(document).__name__}")
    event_type = document.get("event_type")
    if not isinstance(event_type, str):
        return Rejected("schema", "field 'event_type' is missing or not a string")
    if event_type not in INBOUND_EVENT_TYPES.get(topic, ()):
        return Rejected("unknown_type", f"event type {event_type!r} is not listed for {topic}")
    try:
        event = TOPIC_ADAPTERS[topic].validate_json(raw, strict=True)
    except ValidationError as exc:
        return Rejected("schema", describe(exc))
    return Accepted(event, document)


def describe(exc: ValidationError) -> str:
    """Name each offending field; never echo the values (they may be personal data)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"] if not isinstance(p, int)) or "(value)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
