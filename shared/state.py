"""What a service's state is made of, between the service and its store (shared/store.py): the
changes a batch makes (`Changes`, `Commit`), how a record is written (`encode_record`), and what
a load hands back (`Snapshot`, the `StoredRecords` decoded as they are read, and a `Restoring`
that takes them chunk by chunk)."""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import orjson
from pydantic_core import to_json


# How a record is written: compact JSON, keys sorted (a record's bytes do not depend on the order
# its dict was built in). orjson writes it; json.loads reads it back as it reads what json.dumps
# wrote before (the same values; text as UTF-8 rather than \u escapes).
_RECORD_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode
_RECORD_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
                   | orjson.OPT_PASSTHROUGH_SUBCLASS)


def encode_record(record: dict) -> bytes:
    """The bytes stored for a record. Whatever orjson would write otherwise than json.dumps goes
    through json.dumps: what orjson refuses (integers over 64 bits, keys that are not text,
    subclasses, datetimes, dataclasses) and NaN or infinities (orjson writes them as null)."""
    try:
        out = orjson.dumps(record, option=_RECORD_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError
        return _RECORD_JSON(record).encode()
    if b"null" in out and _non_finite(record):
        return _RECORD_JSON(record).encode()
    return out


def _non_finite(record: dict) -> bool:
    """Whether a NaN or an infinity may hide behind a null orjson wrote (a false alarm costs time only)."""
    try:
        text = to_json(record, inf_nan_mode="constants")
    except Exception:  # noqa: BLE001 - unsure: json.dumps decides
        return True
    return b"NaN" in text or b"Infinity" in text


@dataclass
class QuotaChange:
    week: str
    delta_live: int
    cap: int
    check: bool  # True when the batch formed new pairs in that week


@dataclass
class Changes:
    seen: list[str] = field(default_factory=list)
    seen_at: dict[str, float] = field(default_factory=dict)  # an id's own event time, when known
    offsets: dict[str, int] = field(default_factory=dict)
    upserts: dict[str, bytes] = field(default_factory=dict)  # key -> the record's JSON
    deletes: set[str] = field(default_factory=set)
    quota: dict[str, QuotaChange] = field(default_factory=dict)

    def put(self, key: str, record: dict) -> None:
        self.deletes.discard(key)
        self.upserts[key] = encode_record(record)

    def delete(self, key: str) -> None:
        self.upserts.pop(key, None)
        self.deletes.add(key)

    def empty(self) -> bool:
        return not (self.seen or self.offsets or self.upserts or self.deletes or self.quota)


class StoredRecords(Mapping[str, dict]):
    """The records as Redis holds them (JSON bytes), each decoded when it is read. A restore
    reads each record once into the service's own compact state, so the whole decoded snapshot
    never exists at once: after the 2018-2025 history, enforcement's 386,655 records decoded
    in one go were most of a 533 MB peak on restart."""

    __slots__ = ("_raw",)

    def __init__(self, raw: dict[str, bytes]):
        self._raw = raw

    def __getitem__(self, key: str) -> dict:
        return json.loads(self._raw[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def take(self, other: StoredRecords) -> None:
        """Add another chunk's records (as stored: none is decoded)."""
        self._raw.update(other._raw)


class Restoring(Protocol):
    """A service's state being rebuilt from its stored records, handed over a chunk at a time as
    they are read (so the whole stored state and the state built from it never both exist):
    in any order, and a record may come twice (HSCAN allows it), the same both times."""

    def add(self, records: Mapping[str, dict]) -> None:
        """Take these records (each decoded when it is read)."""

    def finish(self, snapshot: Snapshot) -> None:
        """Every record was handed over; `snapshot` holds the rest of the state (its records empty)."""


@dataclass
class Snapshot:
    version: int
    records: Mapping[str, dict]  # a StoredRecords when loaded from Redis
    seen: dict[str, float] | set[str]  # event id -> score (event-time seconds when it was seen)
    offsets: dict[str, int]
    quota: dict[str, dict[str, int]]  # week -> {"live": n, "cap": n}
    outbox: int = 0  # entries committed but not yet published


@dataclass
class Commit:
    """What one commit writes besides the changes: the score of seen ids without a time of
    their own (the batch's latest event time), the horizon below
    which ids are forgotten, the outbox payload (one JSON array per batch), and whether the
    cap is checked (never on a replay: the decisions were taken and published before)."""

    seen_score: float = 0.0
    seen_floor: float | None = None
    outbox: bytes | None = None
    check_cap: bool = True
