"""`oioo whatif` on a real house's history: exported by `oioo export-history`, read live, and
replayed offline: the baseline reproduces what the services published, and a lower cap names
who loses their place."""
from __future__ import annotations

import csv
import json

import pytest

from shared import topics as T
from tests.integration.test_ops_cli import oioo, stack_env  # noqa: F401 - the fixture
from tests.support import factory as f
from tests.support.factory import DAY, HOUR, T0

pytestmark = pytest.mark.integration


async def three_pairs_returned_and_offered(client, observer) -> None:
    for n in range(3):
        at = T0 + n * HOUR
        await client.publish(T.BORDER_ARRIVALS, f.arrival(f"A{n}", at))
        await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi(f"P{n}", at + HOUR))
        await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted(f"P{n}", at + HOUR))
        [req] = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id=f"A{n}")
        await client.publish(T.LIAISON_FR_DECISIONS, f.answer(req["request_id"], at + DAY))
        await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=req["request_id"], decision="accepted")
        await client.publish(T.TRANSFERS_MOVEMENTS, f.executed(req["request_id"], at + 2 * DAY))
        await observer.wait_for(T.LIAISON_UK_ADMISSION_NOTICES, "AdmissionOffered", application_id=f"P{n}")
    await observer.quiet(1.0)


async def test_whatif_reproduces_the_house_and_a_lower_cap_names_who_loses_their_place(
        house, client, observer, stack_env, tmp_path):  # noqa: F811 - the fixture
    await three_pairs_returned_and_offered(client, observer)
    history = tmp_path / "history.jsonl"
    exported = await oioo(stack_env, "export-history", "--out", str(history))
    assert exported.code == 0, exported
    kinds = {json.loads(json.loads(line)["value"]).get("event_type") for line in history.read_text().splitlines()}
    assert {"Decision", "ReturnRequested", "AdmissionOffered"} <= kinds

    same = await oioo(tmp_path / "no-stack.env", "whatif", "--input", str(history))
    assert same.code == 0, same
    assert "baseline check passed" in same.out and "0 differences" in same.out

    # read live from the house this time; the services are not touched
    lower = await oioo(stack_env, "whatif", "--cap", "2", "--out", str(tmp_path / "out"))
    assert lower.code == 0, lower
    assert "baseline check passed" in lower.out and "not yet committed" not in lower.err
    with (tmp_path / "out" / "whatif-subjects.csv").open() as fh:
        people = {r["subject"]: r["change"] for r in csv.DictReader(fh)}
    assert people == {"A2": "not selected", "P2": "not selected"}
    with (tmp_path / "out" / "whatif-weeks.csv").open() as fh:
        [week] = list(csv.DictReader(fh))
    assert (week["baseline_pairs_formed"], week["alternative_pairs_formed"]) == ("3", "2")

    lines = history.read_text().splitlines()
    n = next(i for i, line in enumerate(lines) if '"AdmissionOffered' in line)
    record = json.loads(lines[n])
    offered = json.loads(record["value"])
    offered["paired_request_ids"] = ["someone-else"]
    lines[n] = json.dumps({**record, "value": json.dumps(offered)})
    altered = tmp_path / "altered.jsonl"
    altered.write_text("\n".join(lines) + "\n")
    caught = await oioo(tmp_path / "no-stack.env", "whatif", "--input", str(altered))
    assert caught.code == 1, caught
    assert "baseline check FAILED" in caught.out and offered["event_id"] in caught.out
    assert "paired_request_ids" in caught.out
