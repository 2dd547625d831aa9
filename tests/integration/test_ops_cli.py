"""The `oioo` CLI against a real house, run as operators run it: a separate process that
finds the stack in an env file."""
from __future__ import annotations

import asyncio
import base64
import csv
import json
import sys
from pathlib import Path

import pytest

from deploy.embedded import REPO_ROOT
from shared import topics as T
from shared.timeutil import iso_week
from tests.support import factory as f
from tests.support.flows import returned_and_offered
from tests.support.client import Observer
from tests.support.factory import DAY, HOUR, T0

pytestmark = pytest.mark.integration
WEEK = iso_week(T0)


class Ran:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}"


async def oioo(env_file: Path, *args: str) -> Ran:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.ops.cli", "--env", str(env_file), *args, cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return Ran(proc.returncode, out.decode(), err.decode())


@pytest.fixture
def stack_env(house, tmp_path) -> Path:
    path = tmp_path / "stack.env"
    path.write_text(f"KAFKA_BOOTSTRAP_SERVERS={house.bootstrap}\nREDIS_URL={house.redis_url}\n"
                    f"SIGNING_KEYS_FILE={house.keys_file}\n")
    return path


async def test_explain_follows_a_case_blocked_unblocked_paired_refused_and_its_seat_repaired(
        house, client, observer, stack_env):
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A1", T0, asylum_claimed=True))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A1", decision="blocked")
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi("P1", T0 + HOUR))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted("P1", T0 + HOUR))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="P1", decision="eligible")
    await client.publish(T.CASEWORK_UPDATES, f.casework("AsylumClaimDecided", "A1", T0 + DAY, outcome="inadmissible"))
    [first] = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A1")
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A2", T0 + 2 * DAY))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A2", decision="eligible")
    await client.publish(T.LIAISON_FR_DECISIONS, f.answer(first["request_id"], T0 + 3 * DAY, decision="refused",
                                                          reason_code="not_readmissible"))
    [second] = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A2")
    r1, r2 = first["request_id"], second["request_id"]
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=r2, decision="requested")

    ran = await oioo(stack_env, "explain", "A1", "--json")
    assert ran.code == 0, ran
    chain = json.loads(ran.out)
    assert (chain["kind"], chain["arrivals"], chain["requests"], chain["applications"]) == (
        "arrival", ["A1"], [r1], ["P1"])
    assert chain["see_also"] == [r2]
    steps = [(d["subject"], d["decision"]) for d in chain["decisions"]]
    assert steps == [
        ("case A1", "blocked"), ("seat P1", "blocked"), ("seat P1", "eligible"),
        ("case A1", "eligible"), ("case A1", "paired"), ("seat P1", "paired"), (f"request {r1}", "requested"),
        (f"request {r1}", "refused"), ("case A1", "ineligible"), ("seat P1", "requeued"), ("seat P1", "paired"),
    ]
    by_step = dict(zip(steps, chain["decisions"]))
    assert "asylum_claim_undecided" in chain["decisions"][0]["reasons"]
    assert "france_refused" in chain["decisions"][7]["reasons"] and "not_readmissible" in chain["decisions"][7]["reasons"]
    assert f"request_{r2}" in chain["decisions"][-1]["reasons"]
    assert all(d["rule_version"] and d["caused_by"] and d["time"].endswith("UTC") for d in by_step.values())

    # from the seat: both of its pairs, both cases
    seat = json.loads((await oioo(stack_env, "explain", "P1", "--json")).out)
    assert (seat["kind"], seat["requests"], seat["arrivals"]) == ("application", [r1, r2], ["A1", "A2"])
    # from the second request: its case and its seat, and the first request named as related
    req = json.loads((await oioo(stack_env, "explain", r2, "--json")).out)
    assert (req["kind"], req["arrivals"], req["applications"], req["see_also"]) == ("request", ["A2"], ["P1"], [r1])

    text = await oioo(stack_env, "explain", "A1")
    assert text.code == 0, text
    assert "asylum claim not yet decided" in text.out and "France refused" in text.out
    assert f"Return request {r1}: case A1 paired with seat P1." in text.out
    assert "Doe" not in text.out  # the request's particulars are never read out
    unknown = await oioo(stack_env, "explain", "nobody")
    assert unknown.code == 1 and "No Decision" in unknown.out


async def test_report_csv_matches_the_published_weekly_balances(house, client, observer, stack_env, tmp_path):
    for n, at in enumerate((T0, T0 + 7 * DAY)):
        await returned_and_offered(client, observer, f"A{n}", f"P{n}", at)
    await observer.quiet(1.0)
    published = {b["week"]: b for b in observer.events(T.OPS_BALANCE, "WeeklyBalance")}
    weeks = sorted(published)
    assert len(weeks) == 2

    ran = await oioo(stack_env, "report", "--from", weeks[0], "--to", weeks[-1], "--out", str(tmp_path / "report"))
    assert ran.code == 0, ran
    [csv_path] = (tmp_path / "report").glob("*.csv")
    [png_path] = (tmp_path / "report").glob("*.png")
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with csv_path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["week"] for r in rows] == weeks
    for row in rows:
        latest = published[row["week"]]
        for name, value in row.items():
            expected = str(latest[name]).lower() if isinstance(latest[name], bool) else str(latest[name])
            assert value == expected, (row["week"], name)
    assert rows[-1]["cumulative_returns_executed"] == "2" and rows[-1]["cumulative_admissions_offered"] == "2"

    one = await oioo(stack_env, "report", "--from", weeks[-1], "--to", weeks[-1], "--out", str(tmp_path / "one"))
    assert one.code == 0, one
    with next((tmp_path / "one").glob("*.csv")).open() as fh:
        assert [r["week"] for r in csv.DictReader(fh)] == [weeks[-1]]


async def test_cap_set_is_signed_by_the_operator_and_matching_applies_it(house, client, observer, stack_env, tmp_path):
    ran = await oioo(stack_env, "cap", "set", WEEK, "1", "--at", (T0 - HOUR).isoformat())
    assert ran.code == 0, ran
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=WEEK, decision="cap_set")
    await observer.wait_for(T.OPS_BALANCE, "WeeklyBalance", week=WEEK, cap=1)
    async with Observer(house.bootstrap, (T.OPS_CONTROL,)) as control:
        [sent] = await control.wait_for(T.OPS_CONTROL, "WeeklyCapSet", week=WEEK)
    assert sent.headers["x-key-id"] == b"ops-operators" and sent.key == WEEK

    for n in range(2):  # two ready pairs, a cap of one: one request
        await client.publish(T.BORDER_ARRIVALS, f.arrival(f"A{n}", T0 + n * HOUR))
        await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi(f"P{n}", T0 + 2 * HOUR))
        await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted(f"P{n}", T0 + 2 * HOUR))
    await observer.wait_for(T.OPS_ALERTS, "Alert", kind="cap_reached", subject_ref=WEEK)
    await observer.quiet(1.0)
    assert len(observer.events(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested")) == 1

    status = await oioo(stack_env, "status")
    assert status.code == 0, status
    assert f"This week: {WEEK}" in status.out and "cap_reached" in status.out and "oioo-matching" in status.out

    # by default a control takes the system's own event time, so it never moves the clock
    paused = await oioo(stack_env, "admissions", "pause", "--reason", "Joint Committee review")
    assert paused.code == 0, paused
    [decision] = await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="scheme", decision="admissions_paused")
    latest = max(e["occurred_at"] for e in observer.events(T.OPS_AUDIT) if e is not decision)
    assert decision["occurred_at"] == latest
    assert (await oioo(stack_env, "admissions", "resume")).code == 0
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="scheme", decision="admissions_resumed")

    # no key, no command
    keyless = tmp_path / "keys.json"
    keyless.write_text(json.dumps({"border": {"secret": "s", "topics": [T.BORDER_ARRIVALS]}}))
    env2 = tmp_path / "keyless.env"
    env2.write_text(stack_env.read_text().replace(str(house.keys_file), str(keyless)))
    refused = await oioo(env2, "cap", "set", WEEK, "5", "--at", T0.isoformat())
    assert refused.code != 0 and "ops.control.v1" in refused.err, refused
    wrong = await oioo(stack_env, "cap", "set", WEEK, "5", "--key-id", "border-force-terminals")
    assert wrong.code != 0 and "not allowed" in wrong.err, wrong
    await observer.quiet(1.0)
    assert [b["cap"] for b in observer.events(T.OPS_BALANCE, "WeeklyBalance", week=WEEK)][-1] == 1


async def test_dead_letters_list_hides_values_and_replay_applies_once(house, client, observer, stack_env):
    cap = f.cap_set(WEEK, 7, T0)
    await client.publish(T.OPS_CONTROL, cap, headers={"x-signature": "00" * 32})  # a bad signature
    await client.publish(T.BORDER_ARRIVALS, raw=b'{"arrival_id": "A9", not json', key="A9")
    letters = await observer.wait_for(T.OPS_DEAD_LETTERS, "DeadLetter", count=2)
    by_code = {d["error_code"]: d for d in letters}

    listed = await oioo(stack_env, "dead-letters", "list", "--json")
    assert listed.code == 0, listed
    rows = {r["error_code"]: r for r in json.loads(listed.out)}
    assert set(rows) == {"signature", "not_json"}
    assert rows["signature"]["source_topic"] == T.OPS_CONTROL and rows["signature"]["raw_size"] > 0
    table = await oioo(stack_env, "dead-letters", "list")
    for d in letters:
        assert d["raw_value_b64"] not in listed.out + table.out
    assert "A9" not in listed.out + table.out and by_code["not_json"]["event_id"] in table.out

    # the operators' key is allowed on ops.control.v1: the replay is re-signed and applied, once
    for _ in range(2):
        ran = await oioo(stack_env, "dead-letters", "replay", by_code["signature"]["event_id"])
        assert ran.code == 0 and "re-signed" in ran.out, ran
    await observer.wait_for(T.OPS_BALANCE, "WeeklyBalance", week=WEEK, cap=7)
    await observer.quiet(1.5)
    assert len(observer.events(T.OPS_AUDIT, "Decision", decision="cap_set", caused_by=cap["event_id"])) == 1

    # any other topic: the original bytes go back with their original headers (still not JSON)
    ran = await oioo(stack_env, "dead-letters", "replay", by_code["not_json"]["event_id"])
    assert ran.code == 0 and "original headers" in ran.out, ran
    again = await observer.wait_for(T.OPS_DEAD_LETTERS, "DeadLetter", error_code="not_json", count=2)
    assert again[-1]["offset"] != again[0]["offset"]
    assert base64.b64decode(again[-1]["raw_value_b64"]) == base64.b64decode(again[0]["raw_value_b64"])

    missing = await oioo(stack_env, "dead-letters", "replay", "00000000-0000-0000-0000-000000000000")
    assert missing.code != 0 and "no dead letter" in missing.err
