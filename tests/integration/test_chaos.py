"""`make chaos`, the CI size: the demo's world through two instances of every service while
they, the broker and Redis are broken; nothing lost, nothing changed, the invariants held.
Then the verdict itself is shown to fail on a log with an event taken out or altered."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from deploy.chaos.run import parse_args, run
from deploy.chaos.verify import event_id, verify
from shared import topics as T

pytestmark = pytest.mark.integration

FAULT_KINDS = ("kill -9 (a service instance)", "restart with fault points armed", "broker paused (SIGSTOP)",
               "Redis killed and restarted empty", "Redis flushed (FLUSHALL)",
               "Redis restored from an earlier snapshot")


@pytest.fixture(scope="module")
async def outcome(tmp_path_factory, embedded_binaries):
    out = tmp_path_factory.mktemp("chaos") / "chaos.json"
    result = await run(parse_args(["--short", "--out", str(out)]))
    assert json.loads(out.read_text()) == result.report
    return result


async def test_the_short_chaos_run_passes_with_every_kind_of_fault_injected(outcome):
    report = outcome.report
    missing = [k for k in FAULT_KINDS if report["faults"].get(k, 0) < 1]
    assert not missing, f"fault kinds never injected: {missing}"
    assert report["faults"]["kill -9 (a service instance)"] >= 5
    assert report["unexpected_exits"] == []
    assert report["inbound_events"] > 0 and report["outbound_events"] > 0
    assert report["reference_events"]["matching"] > 0 and report["reference_events"]["transfer"] > 0
    assert (report["events_lost"], report["events_changed"], report["events_extra"],
            report["invariant_violations"]) == (0, 0, 0, 0), outcome.found
    assert report["passed"]


def _once(logs, topic: str):
    """A record of `topic` whose event id appears only once there (taking it out loses it)."""
    ids = [event_id(topic, json.loads(r.value)) for r in logs[topic]]
    for rec in reversed(logs[topic]):
        if ids.count(event_id(topic, json.loads(rec.value))) == 1:
            return rec
    raise AssertionError(f"no single record on {topic}")


async def test_the_verdict_notices_an_event_lost_or_changed(outcome):
    logs = {topic: list(recs) for topic, recs in outcome.logs.items()}
    balance = _once(logs, T.OPS_BALANCE)
    logs[T.OPS_BALANCE].remove(balance)
    request = _once(logs, T.LIAISON_UK_RETURN_REQUESTS)
    doc = json.loads(request.value)
    doc["week"] = "2030-W01"
    at = logs[T.LIAISON_UK_RETURN_REQUESTS].index(request)
    logs[T.LIAISON_UK_RETURN_REQUESTS][at] = replace(request, value=json.dumps(doc).encode())
    accepted = _once(logs, T.INTAKE_ACCEPTED)
    logs[T.INTAKE_ACCEPTED].remove(accepted)
    logs[T.OPS_AUDIT].append(logs[T.OPS_AUDIT][-1])  # a re-publication: allowed, counted

    found = verify(outcome.world, outcome.world.sent, logs, outcome.settings)
    balance_id = json.loads(balance.value)["event_id"]
    accepted_id = json.loads(accepted.value)["event"]["event_id"]
    assert any(balance_id in line for line in found.lost)
    assert any(accepted_id in line and T.INTAKE_ACCEPTED in line for line in found.lost)
    assert any(doc["event_id"] in line for line in found.changed)
    assert found.duplicates == outcome.report["duplicate_deliveries"] + 1
