"""HMAC-SHA256 signing of inbound events (contract: "Signed inbound").

The signature is hex HMAC-SHA256 of the exact value bytes, under the secret's UTF-8 bytes,
carried in headers `x-key-id` and `x-signature`. Each key is allowed on named topics only.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

KEY_ID_HEADER = "x-key-id"
SIGNATURE_HEADER = "x-signature"


@dataclass(frozen=True)
class Key:
    key_id: str
    secret: bytes
    topics: frozenset[str]


class Keyring:
    def __init__(self, keys: dict[str, Key]):
        self._keys = keys

    @classmethod
    def from_mapping(cls, data: dict) -> "Keyring":
        keys = {}
        for key_id, entry in data.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("secret"), str):
                raise ValueError(f"keyring entry {key_id!r} needs a string 'secret'")
            topics = entry.get("topics", [])
            if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
                raise ValueError(f"keyring entry {key_id!r} needs 'topics' as a list of strings")
            keys[key_id] = Key(key_id, entry["secret"].encode("utf-8"), frozenset(topics))
        return cls(keys)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "Keyring":
        return cls.from_mapping(json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def from_env(cls) -> "Keyring":
        path = os.environ.get("SIGNING_KEYS_FILE")
        if not path:
            raise RuntimeError("SIGNING_KEYS_FILE is not set: the keyring of inbound producers is required")
        return cls.from_file(path)

    def get(self, key_id: str) -> Key | None:
        return self._keys.get(key_id)

    def key_for_topic(self, topic: str) -> Key:
        """The first key allowed on `topic` (test and simulation clients sign with it)."""
        for key in self._keys.values():
            if topic in key.topics:
                return key
        raise KeyError(f"no key in the keyring is allowed on {topic}")


def sign(secret: bytes, value: bytes) -> str:
    return hmac.new(secret, value, hashlib.sha256).hexdigest()


def signed_headers(key: Key, value: bytes) -> dict[str, str]:
    return {KEY_ID_HEADER: key.key_id, SIGNATURE_HEADER: sign(key.secret, value)}


def _header(headers: dict[str, bytes | str] | None, name: str) -> str | None:
    if not headers:
        return None
    raw = headers.get(name)
    if raw is None:
        return None
    if isinstance(raw, bytes):
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            return None
    return str(raw)


def verify(keyring: Keyring, topic: str, headers: dict[str, bytes | str] | None, value: bytes) -> tuple[str, str] | None:
    """Check the signature on the raw bytes. Returns None when good, else (error_code, detail)."""
    key_id = _header(headers, KEY_ID_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if not key_id:
        return ("signature", "missing x-key-id header")
    key = keyring.get(key_id)
    if key is None:
        return ("signature", f"unknown key id {key_id!r}")
    if not signature:
        return ("signature", "missing x-signature header")
    if not hmac.compare_digest(sign(key.secret, value), signature.lower()):
        return ("signature", f"signature does not match the value under key {key_id!r}")
    if topic not in key.topics:
        return ("unauthorised_producer", f"key {key_id!r} is not allowed on {topic}")
    return None
