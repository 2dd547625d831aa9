"""Deterministic ids: an outbound event published again after a crash carries the same id.

An id is the uuid5 of the causing event id and what was derived from it, computed here from
SHA-1 directly (what `uuid.uuid5` does, without its checks and objects): the same ids, to the
bit. `derived_id_str` gives the id as the wire writes it, without building a UUID at all.
"""
from __future__ import annotations

import uuid
from hashlib import sha1

NAMESPACE = uuid.UUID("6f1c2a52-3e0b-4d4e-9b7e-0c1b5e6a7d10")
_NAMESPACE = NAMESPACE.bytes
# RFC 4122 version 5: the version nibble and the variant bits over the first 16 bytes of SHA-1
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (5 << 76) | (0x8000 << 48)
_UNKNOWN = uuid.SafeUUID.unknown
_new = object.__new__
_set = object.__setattr__


def _digest(cause: str | uuid.UUID, parts: tuple) -> bytes:
    name = "/".join([str(cause), *map(str, parts)])
    return sha1(_NAMESPACE + name.encode("utf-8")).digest()


def derived_id(cause: str | uuid.UUID, *parts: object) -> uuid.UUID:
    """uuid5 of the causing event id and what was derived from it."""
    value = int.from_bytes(_digest(cause, parts)[:16], "big") & _CLEAR | _SET
    uid = _new(uuid.UUID)  # what UUID(int=value) sets, without its argument checks
    _set(uid, "int", value)
    _set(uid, "is_safe", _UNKNOWN)
    return uid


def derived_id_str(cause: str | uuid.UUID, *parts: object) -> str:
    """`str(derived_id(cause, *parts))`: the canonical 8-4-4-4-12 hex form."""
    raw = bytearray(_digest(cause, parts)[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
