"""Screening an inbound message, in the order the contract gives the checks. Pure: no I/O, and
no clock of its own (the wiring passes the time the record was received)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime

import orjson
from pydantic import ValidationError

from shared.events.base import Event
from shared.events.inbound import TOPIC_ADAPTERS, ArrivalRecorded
from shared.events.internal import particulars_json
from shared.limits import FUTURE_TOLERANCE, MAX_DEPTH, MAX_VALUE_BYTES, deeper_than
from shared.signing import Keyring, verify
from shared.topics import INBOUND_EVENT_TYPES

# Every code screen() can give, in the order it checks them.
CODES = ("too_large", "signature", "unauthorised_producer", "not_json", "unknown_type", "schema",
         "implausible_time")

@dataclass(frozen=True)
class Accepted:
    event: Event
    document: dict  # the value as the producer sent it, schema-checked


@dataclass(frozen=True)
class Rejected:
    error_code: str  # one of CODES
    error_detail: str  # names fields and limits, never a field's value


def screen(keyring: Keyring, topic: str, headers: dict, value: bytes | None, *,
           received_at: datetime) -> Accepted | Rejected:
    """Size, signature, the key's topics, JSON, type, schema, then the time's plausibility.

    `received_at` is intake's own clock when the record arrived (timezone-aware)."""
    raw = value or b""
    # Before the signature: an unsigned value costs its sender nothing, so its size must not
    # cost us a MAC over megabytes, nor a dead letter over the broker's limit.
    if len(raw) > MAX_VALUE_BYTES:
        return Rejected("too_large", f"value is {len(raw)} bytes, over the limit of {MAX_VALUE_BYTES}")
    bad_signature = verify(keyring, topic, headers, raw)
    if bad_signature:
        return Rejected(*bad_signature)
    parsed = _parse(raw)
    if isinstance(parsed, Rejected):
        return parsed
    document, non_finite = parsed
    event_type = document.get("event_type")
    if not isinstance(event_type, str):
        return Rejected("schema", "event_type: missing or not a string")
    if event_type not in INBOUND_EVENT_TYPES.get(topic, ()):
        # Not quoted: it is a value like any other (the restricted dead letter holds it).
        return Rejected("unknown_type", f"event_type: not a type listed for {topic}")
    if non_finite:
        return Rejected("schema", "NaN and Infinity are not numbers the contract allows")
    try:
        event = TOPIC_ADAPTERS[topic].validate_json(raw, strict=True)
    except ValidationError as exc:
        # json.loads took it, so this should not happen; if the two parsers ever disagree,
        # the value is still not JSON the contract accepts.
        if any(err["type"] == "json_invalid" for err in exc.errors(include_url=False, include_input=False)):
            return Rejected("not_json", "value is not JSON the contract accepts")
        return Rejected("schema", describe(exc))
    # The event's own time against ours: a record's broker timestamp is set by its producer,
    # so it is no witness of when the event could have happened.
    if event.occurred_at > received_at + FUTURE_TOLERANCE:
        return Rejected("implausible_time",
                        f"occurred_at is more than {FUTURE_TOLERANCE} ahead of intake's clock at receipt")
    return Accepted(event, document)


def _parse(raw: bytes) -> tuple[dict, bool] | Rejected:
    """The value as one JSON object, and whether it holds NaN or an infinity."""
    # Depth first, by a scan that cannot recurse: the parser itself would, without bound.
    if deeper_than(raw, MAX_DEPTH):
        return Rejected("not_json", f"JSON is nested deeper than {MAX_DEPTH} levels")
    # orjson first: it reads what json.loads reads, to the same values, and refuses the rest
    # (NaN, infinities, lone surrogates, bytes that are not UTF-8), which the reading below
    # then names. Only integers of 19 digits or more would read otherwise (orjson makes a float
    # of one past 64 bits), so a value with such a run of digits is read below.
    if _LONG_DIGITS not in raw.translate(_DIGITS_ONLY):
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        else:
            if isinstance(document, dict):
                return document, False
    return _read(raw)


def _read(raw: bytes) -> tuple[dict, bool] | Rejected:
    """json.loads's reading of the value, which also says what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected("not_json", f"value is not UTF-8 (byte {exc.start})")
    non_finite = False

    def number(literal: str) -> float:
        nonlocal non_finite
        result = float(literal)
        non_finite = non_finite or not math.isfinite(result)  # 1e999 is an infinity too
        return result

    def constant(name: str) -> float:
        nonlocal non_finite
        non_finite = True
        return float(name)

    try:
        document = json.loads(text, parse_float=number, parse_constant=constant)
    except ValueError as exc:  # JSONDecodeError, and integers too long to convert
        where = f" at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        return Rejected("not_json", f"value is not JSON{where}")
    if not isinstance(document, dict):
        return Rejected("not_json", f"value must be one JSON object, not {type(document).__name__}")
    if _LONE_SURROGATE_POSSIBLE in raw and not _unicode_text(document):
        return Rejected("not_json", "value holds a lone surrogate escape, which is not Unicode text")
    return document, non_finite


# Every digit as "0", anything else as a space: a run of 19 digits is then a plain substring
# (a regular expression took 5 us a value, as long as the rest of the reading).
_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_DIGITS = b"0" * 19

# The bytes were decoded as strict UTF-8, which has no surrogates: a lone one can only come
# from a `\u` escape, so a value without that sequence needs no look.
_LONE_SURROGATE_POSSIBLE = b"\\u"


def _unicode_text(document: dict) -> bool:
    """Whether every string in the parsed value is Unicode text: a lone surrogate escape
    ("\\ud800") parses, but nothing could write it out again."""
    try:
        # The depth is bounded, so this cannot recurse far.
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def describe(exc: ValidationError) -> str:
    """Name each offending field; never echo the values (they may be personal data)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False)[:5]:
        loc = ".".join(str(p)[:64] for p in err["loc"] if not isinstance(p, int)) or "(value)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


# Names and dates of birth go to transfer alone (for France); enforcement and matching decide
# without them.
PERSONAL_FIELDS = ("family_name", "given_names", "date_of_birth")


def split_particulars(event: Event, document: dict) -> tuple[bytes | None, dict]:
    """An accepted arrival's particulars for transfer (an ArrivalParticulars as JSON), and the
    document without the personal fields (for the house). Other events pass whole."""
    if not isinstance(event, ArrivalRecorded):
        return None, document
    house = dict(document)  # a copy keeps the order of the fields that stay
    for name in PERSONAL_FIELDS:
        house.pop(name, None)
    return particulars_json(event), house
