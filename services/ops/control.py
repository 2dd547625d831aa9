"""Operator controls: signed events on ops.control.v1, as an authorised operator sends them.

"No key, no command": every control is signed with a key of the keyring (SIGNING_KEYS_FILE)
that is allowed on ops.control.v1; without one, nothing is sent. Each event is checked against
the contract's schema before it leaves, so a typo is refused here rather than dead-lettered.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from shared import topics as T
from shared.events.inbound import TOPIC_ADAPTERS
from shared.signing import Key, Keyring, signed_headers

PRODUCER = "oioo-cli"


class Refused(RuntimeError):
    """The command cannot go ahead; the message says why, for the operator."""


def operator_key(keys_file: str | None, key_id: str | None = None, topic: str = T.OPS_CONTROL) -> Key:
    """The operator's key: `key_id` if given, else the keyring's first key allowed on `topic`."""
    if not keys_file:
        raise Refused("no keyring: SIGNING_KEYS_FILE is not set (in .run/stack.env or the environment); "
                      "operator commands must be signed")
    try:
        keyring = Keyring.from_file(keys_file)
    except (OSError, ValueError) as exc:
        raise Refused(f"cannot read the keyring {keys_file}: {exc.__class__.__name__}") from None
    if key_id is None:
        try:
            return keyring.key_for_topic(topic)
        except KeyError:
            raise Refused(f"no key in {keys_file} is allowed on {topic}") from None
    key = keyring.get(key_id)
    if key is None:
        raise Refused(f"key id {key_id!r} is not in {keys_file}")
    if topic not in key.topics:
        raise Refused(f"key {key_id!r} is not allowed on {topic}")
    return key


def control_event(event_type: str, occurred_at: datetime, **fields: Any) -> dict[str, Any]:
    if occurred_at.tzinfo is None:
        raise Refused("the time of a control needs an offset (e.g. 2025-09-01T09:00:00+00:00)")
    doc = {"event_id": str(uuid.uuid4()), "event_type": event_type, "occurred_at": occurred_at.isoformat(),
           "producer": PRODUCER, **fields}
    try:
        TOPIC_ADAPTERS[T.OPS_CONTROL].validate_json(encode(doc), strict=True)
    except ValidationError as exc:
        fields_wrong = sorted({".".join(str(p) for p in e["loc"][1:]) for e in exc.errors(include_input=False)})
        raise Refused(f"{event_type} would be refused by intake: check {', '.join(fields_wrong)}") from None
    return doc


def control_key(doc: Mapping[str, Any]) -> str:
    """The contract's key on ops.control.v1 is the subject: the week a cap is for, else the kind."""
    return str(doc.get("week") or doc["event_type"])


def encode(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


async def send(bootstrap: str, topic: str, key: str | None, value: bytes,
               headers: Sequence[tuple[str, bytes]], partition: int | None = None):
    """One record, acknowledged by every replica (acks=all); returns its RecordMetadata.
    Idempotence is off: Tansu's in-memory store refuses InitProducerId."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=0)
    await producer.start()
    try:
        return await producer.send_and_wait(topic, value, key=key.encode("utf-8") if key is not None else None,
                                            headers=list(headers), partition=partition)
    finally:
        await producer.stop()


async def publish_control(bootstrap: str, key: Key, doc: dict[str, Any]):
    value = encode(doc)
    headers = [("content-type", b"application/json")]
    headers += [(k, v.encode("ascii")) for k, v in signed_headers(key, value).items()]
    return await send(bootstrap, T.OPS_CONTROL, control_key(doc), value, headers)
