"""`oioo dead-letters`: what was set aside, and putting it back once the cause is fixed.

Listing never shows the raw value (a dead letter may hold personal data). A replay publishes the
original bytes again, to the topic and partition they came from, so the event keeps its
`event_id` and the house's duplicate filters apply it at most once however often it is
replayed. The original headers are taken from the source record when it is still on its topic
and its bytes match the dead letter's digest; the value is re-signed only when the operator's
key is allowed on that topic. A value that was cut (over 256 KiB) is never replayed: it is not
the original, and the original is too large for the contract anyway.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from services.ops.control import Refused
from services.ops.topics_reader import Record
from shared import topics as T
from shared.signing import KEY_ID_HEADER, SIGNATURE_HEADER, Key, sign

REPLAY_HEADER = "x-oioo-replay-of"
REPLAYABLE_TOPICS = frozenset(T.INBOUND_TOPICS) | {t.name for t in T.TOPICS if t.internal}


@dataclass(frozen=True)
class Row:
    event_id: str
    occurred_at: str
    error_code: str
    source_topic: str
    partition: int
    offset: int
    raw_size: int
    cut: bool
    error_detail: str


def row(letter: dict) -> Row:
    size = int(letter.get("raw_size", 0))
    kept = len(base64.b64decode(letter.get("raw_value_b64") or "", validate=False))
    return Row(str(letter.get("event_id")), str(letter.get("occurred_at")), str(letter.get("error_code")),
               str(letter.get("source_topic")), int(letter.get("partition", -1)), int(letter.get("offset", -1)),
               size, kept < size, str(letter.get("error_detail", ""))[:160])


@dataclass(frozen=True)
class Replay:
    topic: str
    partition: int | None
    key: str | None
    value: bytes
    headers: list[tuple[str, bytes]]
    resigned: bool
    original_headers: bool


def plan_replay(letter: dict, letter_key: str | None, original: Record | None, operator: Key | None) -> Replay:
    """What to publish for one DeadLetter; raises Refused when it must not be replayed."""
    topic = str(letter.get("source_topic"))
    if topic not in REPLAYABLE_TOPICS:
        raise Refused(f"{topic} is not a topic the system consumes; nothing to replay to")
    try:
        raw = base64.b64decode(letter.get("raw_value_b64") or "", validate=True)
    except (binascii.Error, ValueError):
        raise Refused("the dead letter's raw value is not valid base64") from None
    if len(raw) < int(letter.get("raw_size", len(raw))):
        raise Refused(f"the value was cut at {len(raw)} of {letter.get('raw_size')} bytes: "
                      "only its start was kept, so it cannot be replayed")
    digest = hashlib.sha256(raw).hexdigest()
    if letter.get("raw_sha256") and digest != letter["raw_sha256"]:
        raise Refused("the kept value does not match the dead letter's raw_sha256")
    same = original is not None and hashlib.sha256(original.value).hexdigest() == digest
    headers = [(k, v) for k, v in original.header_list] if same else [("content-type", b"application/json")]
    key = original.key if same else letter_key
    resigned = operator is not None and topic in operator.topics
    if resigned:
        headers = [(k, v) for k, v in headers if k not in (KEY_ID_HEADER, SIGNATURE_HEADER)]
        headers += [(KEY_ID_HEADER, operator.key_id.encode("ascii")),
                    (SIGNATURE_HEADER, sign(operator.secret, raw).encode("ascii"))]
    headers = [(k, v) for k, v in headers if k != REPLAY_HEADER]
    headers.append((REPLAY_HEADER, str(letter.get("event_id")).encode("ascii")))
    partition = letter.get("partition")
    valid_partition = isinstance(partition, int) and 0 <= partition < T.TOPICS_BY_NAME[topic].partitions
    return Replay(topic, partition if valid_partition else None, key, raw, headers, resigned, same)
