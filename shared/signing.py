"""HMAC-SHA256 signing of inbound events (contract: "Signed inbound").

The signature is hex HMAC-SHA256 of the exact value bytes, under the secret's UTF-8 bytes,
carried in headers `x-key-id` and `x-signature`. Each key is allowed on named topics only.

Keys rotate without a restart: a keyring read from a file looks at the file again (size,
mtime, inode) at most once a second when it is used, and swaps in the new keys if they load.
During a rotation the file holds the old and the new key id, so both verify; the old one is
removed once its producer has moved. A new file that does not load (bad JSON, a bad entry, or
in production a development or short secret) is refused: the keys already loaded stay and the
refusal is logged without any value from the file.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("oioo.signing")

KEY_ID_HEADER = "x-key-id"
SIGNATURE_HEADER = "x-signature"
RELOAD_INTERVAL_S = 1.0
MIN_SECRET_BYTES = 32
DEV_KEYRING = Path(__file__).resolve().parent.parent / "deploy" / "dev-keys.json"
# SHA-256 of the development secrets, so they are recognised by content even where
# deploy/dev-keys.json is absent or was copied elsewhere (tests keep this in step with the file).
_DEV_SECRET_DIGESTS = frozenset({
    "b596e4a8ed4aeaf5474a769783c3a71e190ab1ebae9f33e65239fd20a2d28423",
    "2fd5c4eb5b4178dc9dd274558290b43e5a440c88f23e8ec397e83f19e83fc6b3",
    "fc96628cb6163647c357f1fc3dfe1c5dd25d2b1e280dba9739031a4dcb65d8b5",
    "705f23bd88143e28248724a9dc45c504697f14410ac5f861197492bf2897882f",
    "9a71b759cf8c638dde1c66c71cbc129e42406643213ad5236064e3dfe21dccec",
    "4b3b936281bf82b9fec6f562fb5984c995660437b8fde5fc529fa4275aeeb79a",
    "de3c7ca5d15d3dba9b44f03e60a03b00c5cb688c2f561808389712a614f07a8b",
})


@dataclass(frozen=True)
class Key:
    key_id: str
    secret: bytes = field(repr=False)
    topics: frozenset[str]


def _parse(data: object) -> dict[str, Key]:
    if not isinstance(data, dict):
        raise ValueError("the keyring must be one JSON object of key ids")
    keys = {}
    for key_id, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("secret"), str):
            raise ValueError(f"keyring entry {key_id!r} needs a string 'secret'")
        topics = entry.get("topics", [])
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            raise ValueError(f"keyring entry {key_id!r} needs 'topics' as a list of strings")
        keys[key_id] = Key(key_id, entry["secret"].encode("utf-8"), frozenset(topics))
    return keys


def read_keys(path: Path) -> dict[str, Key]:
    return _parse(json.loads(path.read_text(encoding="utf-8")))


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _dev_digests() -> frozenset[str]:
    digests = set(_DEV_SECRET_DIGESTS)
    try:
        digests.update(hashlib.sha256(k.secret).hexdigest() for k in read_keys(DEV_KEYRING).values())
    except (OSError, ValueError):
        pass
    return frozenset(digests)


def production_problems(keys: dict[str, Key]) -> list[str]:
    """What makes these keys unfit for production, naming key ids, never secrets."""
    problems = []
    if not keys:
        problems.append("the signing keyring holds no keys")
    dev = _dev_digests()
    from_dev = sorted(k.key_id for k in keys.values() if hashlib.sha256(k.secret).hexdigest() in dev)
    if from_dev:
        problems.append("the signing keyring holds development keys (the public secrets of "
                        f"deploy/dev-keys.json) under key ids {', '.join(from_dev)}")
    short = sorted(k.key_id for k in keys.values() if len(k.secret) < MIN_SECRET_BYTES)
    if short:
        problems.append(f"signing secrets shorter than {MIN_SECRET_BYTES} bytes under key ids {', '.join(short)}")
    return problems


def _production() -> bool:
    return os.environ.get("OIOO_ENV", "").strip().lower() == "production"


class Keyring:
    """Key ids to keys. One made by `from_file` follows its file (see the module's docstring)."""

    def __init__(self, keys: dict[str, Key], *, path: str | os.PathLike | None = None,
                 strict: bool = False, clock: Callable[[], float] = time.monotonic):
        self._keys = keys
        self._path = Path(path) if path is not None else None
        self._strict = strict
        self._clock = clock
        self._stamp: tuple[int, int, int] | None = None
        self._next_look = clock() + RELOAD_INTERVAL_S

    @classmethod
    def from_mapping(cls, data: dict) -> "Keyring":
        return cls(_parse(data))

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, strict: bool | None = None,
                  clock: Callable[[], float] = time.monotonic) -> "Keyring":
        """strict (default: OIOO_ENV=production) refuses development and short secrets,
        at start and on every reload."""
        strict = _production() if strict is None else strict
        path = Path(path)
        stamp = _stamp(path)
        keys = read_keys(path)
        if strict and (problems := production_problems(keys)):
            raise ValueError(f"keyring {path}: " + "; ".join(problems))
        ring = cls(keys, path=path, strict=strict, clock=clock)
        ring._stamp = stamp
        return ring

    @classmethod
    def from_env(cls) -> "Keyring":
        path = os.environ.get("SIGNING_KEYS_FILE")
        if not path:
            raise RuntimeError("SIGNING_KEYS_FILE is not set: the keyring of inbound producers is required")
        return cls.from_file(path)

    @property
    def key_ids(self) -> frozenset[str]:
        self._follow_file()
        return frozenset(self._keys)

    def keys(self) -> dict[str, Key]:
        self._follow_file()
        return dict(self._keys)

    def get(self, key_id: str) -> Key | None:
        self._follow_file()
        return self._keys.get(key_id)

    def key_for_topic(self, topic: str) -> Key:
        """The first key allowed on `topic` (test and simulation clients sign with it)."""
        self._follow_file()
        for key in self._keys.values():
            if topic in key.topics:
                return key
        raise KeyError(f"no key in the keyring is allowed on {topic}")

    def _follow_file(self) -> None:
        if self._path is None:
            return
        now = self._clock()
        if now < self._next_look:
            return
        self._next_look = now + RELOAD_INTERVAL_S
        try:
            stamp = _stamp(self._path)
        except OSError as exc:
            if self._stamp is not None:
                log.error("keyring %s cannot be read (%s); keeping the %d keys loaded before",
                          self._path, exc.__class__.__name__, len(self._keys))
                self._stamp = None
            return
        if stamp == self._stamp:
            return
        # Remember the refused version too: it is logged once, not every second.
        self._stamp = stamp
        try:
            keys = read_keys(self._path)
            problems = production_problems(keys) if self._strict else []
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            # JSON and entry errors carry no secret, but say only what kind of error it is.
            log.error("keyring %s changed but does not load (%s); keeping the %d keys loaded before",
                      self._path, exc.__class__.__name__, len(self._keys))
            return
        if problems:
            log.error("keyring %s changed but is refused (%s); keeping the %d keys loaded before",
                      self._path, "; ".join(problems), len(self._keys))
            return
        added, removed = sorted(keys.keys() - self._keys.keys()), sorted(self._keys.keys() - keys.keys())
        self._keys = keys
        log.warning("keyring %s reloaded: %d keys, added %s, removed %s",
                    self._path, len(keys), added or "none", removed or "none")


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
