"""The keyring follows its file: keys rotate without a restart, a bad file changes nothing."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from tests.support.factory import T0, arrival
from shared.signing import DEV_KEYRING, RELOAD_INTERVAL_S, Keyring, sign, signed_headers, verify

TOPIC = "border.arrivals.v1"
OLD = "terminals-old-" + "o" * 40
NEW = "terminals-new-" + "n" * 40
VALUE = b'{"event_type": "ArrivalRecorded"}'


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = RELOAD_INTERVAL_S) -> None:
        self.now += seconds


def write(path: Path, keys: dict[str, str] | str) -> None:
    """Replace the file the way an operator's tooling would: write aside, then rename."""
    text = keys if isinstance(keys, str) else json.dumps({k: {"secret": s, "topics": [TOPIC]} for k, s in keys.items()})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def headers(key_id: str, secret: str) -> dict[str, str]:
    return {"x-key-id": key_id, "x-signature": sign(secret.encode(), VALUE)}


@pytest.fixture
def ring(tmp_path):
    clock = Clock()
    path = tmp_path / "keys.json"
    write(path, {"t-1": OLD})
    return Keyring.from_file(path, strict=False, clock=clock), path, clock


def test_a_new_key_is_valid_beside_the_old_during_the_overlap(ring):
    keyring, path, clock = ring
    write(path, {"t-1": OLD, "t-2": NEW})
    clock.tick(RELOAD_INTERVAL_S / 2)
    assert keyring.get("t-2") is None  # looked at most once a second
    clock.tick(RELOAD_INTERVAL_S / 2)
    assert verify(keyring, TOPIC, headers("t-1", OLD), VALUE) is None
    assert verify(keyring, TOPIC, headers("t-2", NEW), VALUE) is None


def test_a_retired_key_stops_verifying(ring):
    keyring, path, clock = ring
    write(path, {"t-2": NEW})
    clock.tick()
    assert verify(keyring, TOPIC, headers("t-1", OLD), VALUE) == ("signature", "unknown key id 't-1'")
    assert verify(keyring, TOPIC, headers("t-2", NEW), VALUE) is None


def test_a_changed_secret_under_the_same_key_id_in_place(ring):
    keyring, path, clock = ring
    path.write_text(json.dumps({"t-1": {"secret": NEW + "x", "topics": [TOPIC]}}))  # in place, other size
    clock.tick()
    assert verify(keyring, TOPIC, headers("t-1", OLD), VALUE)[0] == "signature"
    assert verify(keyring, TOPIC, headers("t-1", NEW + "x"), VALUE) is None


@pytest.mark.parametrize("bad", ["{not json", "[1, 2]", json.dumps({"t-9": {"secret": 5, "topics": [TOPIC]}}),
                                 json.dumps({"t-9": {"secret": "s" * 40, "topics": TOPIC}})])
def test_a_bad_new_file_keeps_the_old_keys_and_logs_no_values(ring, caplog, bad):
    keyring, path, clock = ring
    write(path, bad)
    clock.tick()
    with caplog.at_level(logging.INFO, logger="oioo.signing"):
        assert verify(keyring, TOPIC, headers("t-1", OLD), VALUE) is None
        assert keyring.key_ids == {"t-1"}
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "keeping the 1 keys loaded before" in errors[0]
    assert "s" * 40 not in errors[0] and OLD not in errors[0] and "not json" not in errors[0]
    clock.tick()
    keyring.get("t-1")
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1  # logged once, not every second
    write(path, {"t-1": OLD, "t-2": NEW})  # fixed: taken
    clock.tick()
    assert keyring.key_ids == {"t-1", "t-2"}


def test_a_missing_file_keeps_the_old_keys(ring):
    keyring, path, clock = ring
    path.unlink()
    clock.tick()
    assert keyring.get("t-1") is not None
    write(path, {"t-2": NEW})
    clock.tick()
    assert keyring.key_ids == {"t-2"}


def test_in_production_a_reload_refuses_development_and_short_secrets(tmp_path, caplog):
    clock = Clock()
    path = tmp_path / "keys.json"
    write(path, {"t-1": OLD})
    keyring = Keyring.from_file(path, strict=True, clock=clock)
    dev = json.loads(DEV_KEYRING.read_text())
    for bad in ({"t-1": OLD, "leak": dev["immigration-enforcement"]["secret"]}, {"t-1": OLD, "t-2": "short"}):
        write(path, bad)
        clock.tick()
        with caplog.at_level(logging.ERROR, logger="oioo.signing"):
            assert keyring.key_ids == {"t-1"}
    text = caplog.text
    assert "development keys" in text and "shorter than 32 bytes" in text
    assert dev["immigration-enforcement"]["secret"] not in text and "short\"" not in text


def test_production_refuses_the_development_keyring_at_load():
    with pytest.raises(ValueError, match="development keys") as exc:
        Keyring.from_file(DEV_KEYRING, strict=True)
    assert "dev-" not in str(exc.value).replace("dev-keys.json", "")


def test_production_is_strict_by_default(monkeypatch):
    monkeypatch.setenv("OIOO_ENV", "production")
    with pytest.raises(ValueError):
        Keyring.from_file(DEV_KEYRING)
    monkeypatch.setenv("OIOO_ENV", "development")
    assert Keyring.from_file(DEV_KEYRING).get("french-liaison") is not None


def test_a_producer_signing_with_the_rotated_key_is_verified_without_a_restart(ring):
    keyring, path, clock = ring
    value = json.dumps(arrival("A-1", T0)).encode()
    write(path, {"t-1": OLD, "t-2": NEW})
    clock.tick()
    assert verify(keyring, TOPIC, signed_headers(keyring.get("t-2"), value), value) is None
    assert verify(keyring, "casework.updates.v1", signed_headers(keyring.get("t-2"), value), value) == \
        ("unauthorised_producer", "key 't-2' is not allowed on casework.updates.v1")


def test_key_repr_hides_the_secret(ring):
    keyring, _, _ = ring
    assert OLD not in repr(keyring.get("t-1"))
