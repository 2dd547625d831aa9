"""Operator controls and dead-letter replays: what is signed, what is refused."""
from __future__ import annotations

import base64
import csv
import hashlib
import json

import pytest

from services.ops.control import Refused, control_event, control_key, encode, operator_key
from services.ops.dead_letters import REPLAY_HEADER, plan_replay, row
from services.ops.report import write_report
from services.ops import stack_env
from services.ops.stack_env import NoStack, health_urls, load
from services.ops.topics_reader import Record
from shared import topics as T
from shared.dead_letters import dead_letter
from shared.signing import Keyring, sign, verify
from tests.support import factory as f
from tests.support.factory import T0

KEYS = {"ops-operators": {"secret": "op", "topics": [T.OPS_CONTROL]},
        "border": {"secret": "bf", "topics": [T.BORDER_ARRIVALS]}}


@pytest.fixture
def keys_file(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(KEYS))
    return str(path)


def test_the_operator_key_is_the_one_allowed_on_ops_control(keys_file):
    assert operator_key(keys_file).key_id == "ops-operators"
    with pytest.raises(Refused, match="SIGNING_KEYS_FILE"):
        operator_key(None)
    with pytest.raises(Refused, match="not allowed"):
        operator_key(keys_file, "border")
    with pytest.raises(Refused, match="not in"):
        operator_key(keys_file, "nobody")


def test_no_operator_key_in_the_keyring_refuses(tmp_path):
    path = tmp_path / "k.json"
    path.write_text(json.dumps({"border": KEYS["border"]}))
    with pytest.raises(Refused, match="no key .* allowed on ops.control.v1"):
        operator_key(str(path))


def test_a_control_is_checked_against_the_contract_before_it_is_sent():
    doc = control_event("WeeklyCapSet", T0, week="2025-W36", cap=3)
    assert control_key(doc) == "2025-W36"
    assert control_key(control_event("AdmissionsPaused", T0, reason="r")) == "AdmissionsPaused"
    with pytest.raises(Refused, match="week"):
        control_event("WeeklyCapSet", T0, week="2025-36", cap=3)
    with pytest.raises(Refused, match="cap"):
        control_event("WeeklyCapSet", T0, week="2025-W36", cap=-1)
    with pytest.raises(Refused, match="offset"):
        control_event("ClockTick", T0.replace(tzinfo=None))


def letter_for(raw: bytes, topic: str = T.BORDER_ARRIVALS, code: str = "schema") -> dict:
    letter, _ = dead_letter(topic=topic, partition=1, offset=4, raw=raw, code=code, detail="d", when=T0,
                            producer="oioo-intake")
    return json.loads(letter.to_json())


def operator():
    return Keyring.from_mapping(KEYS).get("ops-operators")


def test_replay_keeps_the_original_bytes_and_headers_when_the_source_record_matches():
    raw = encode(f.arrival("A1", T0))
    headers = [("content-type", b"application/json"), ("x-key-id", b"border"), ("x-signature", b"abc")]
    original = Record(T.BORDER_ARRIVALS, 1, 4, "A1", raw, dict(headers), headers)
    plan = plan_replay(letter_for(raw), "A1", original, operator())
    assert (plan.topic, plan.partition, plan.key, plan.value) == (T.BORDER_ARRIVALS, 1, "A1", raw)
    assert plan.headers[:3] == headers and not plan.resigned and plan.original_headers
    assert dict(plan.headers)[REPLAY_HEADER] == letter_for(raw)["event_id"].encode()


def test_replay_on_the_operators_topic_is_signed_with_the_operator_key():
    raw = encode(f.cap_set("2025-W36", 3, T0))
    plan = plan_replay(letter_for(raw, T.OPS_CONTROL, "signature"), "2025-W36", None, operator())
    assert plan.resigned and not plan.original_headers
    keyring = Keyring.from_mapping(KEYS)
    assert verify(keyring, T.OPS_CONTROL, dict(plan.headers), plan.value) is None
    assert dict(plan.headers)["x-signature"] == sign(b"op", raw).encode()


def test_replay_refuses_a_cut_value_a_bad_digest_and_an_outbound_topic():
    big = b"x" * (256 * 1024 + 10)
    cut = letter_for(big, code="too_large")
    assert row(cut).cut and row(cut).raw_size == len(big)
    with pytest.raises(Refused, match="cut"):
        plan_replay(cut, None, None, operator())
    raw = encode(f.arrival("A1", T0))
    tampered = {**letter_for(raw), "raw_sha256": hashlib.sha256(b"other").hexdigest()}
    with pytest.raises(Refused, match="raw_sha256"):
        plan_replay(tampered, None, None, operator())
    with pytest.raises(Refused, match="not a topic the system consumes"):
        plan_replay(letter_for(raw, T.OPS_AUDIT), None, None, operator())


def test_a_listed_row_never_carries_the_raw_value():
    raw = encode(f.arrival("A1", T0))
    r = row(letter_for(raw))
    assert base64.b64encode(raw).decode() not in json.dumps(r.__dict__) and "Doe" not in json.dumps(r.__dict__)


def test_report_writes_the_chosen_weeks_as_published(tmp_path):
    from services.ops.figures import BALANCE_FIELDS

    balances = {w: {**{n: i for i, n in enumerate(BALANCE_FIELDS)}, "week": w, "admissions_paused": w == "2025-W37"}
                for w in ("2025-W35", "2025-W36", "2025-W37", "2025-W38")}
    written = write_report(tmp_path, balances, "2025-W36", "2025-W37")
    assert written.weeks == ["2025-W36", "2025-W37"]
    with written.csv.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["week"] for r in rows] == ["2025-W36", "2025-W37"]
    assert [r["admissions_paused"] for r in rows] == ["false", "true"]
    assert rows[0]["cumulative_returns_executed"] == str(BALANCE_FIELDS.index("cumulative_returns_executed"))
    assert written.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stack_env_file_overrides_the_environment_and_names_health_urls(tmp_path, monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env:1")
    path = tmp_path / "stack.env"
    path.write_text("# made by make up\nKAFKA_BOOTSTRAP_SERVERS=file:2\nHEALTH_URLS=intake=http://h:1/, matching=http://h:2\n")
    env = load(path)
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "file:2"
    assert health_urls(env) == {"intake": "http://h:1", "matching": "http://h:2"}
    with pytest.raises(NoStack):
        load(tmp_path / "missing.env")
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(stack_env, "REPO_ENV_FILE", tmp_path / "no-repo" / "stack.env")
    with pytest.raises(NoStack, match="make up"):
        load()
