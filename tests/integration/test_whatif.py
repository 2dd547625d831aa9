"""`oioo whatif` on a real house's history: exported by `oioo export-history`, read live, and
replayed offline: the baseline reproduces what the services published, and a lower cap names
who loses their place."""
from __future__ import annotations

import csv
import json

import pytest

from tests.integration.test_ops_cli import oioo, stack_env  # noqa: F401 - the fixture
from tests.support.factory import HOUR, T0
from tests.support.flows import returned_and_offered

pytestmark = pytest.mark.integration


async def three_pairs_returned_and_offered(client, observer) -> None:
    for n in range(3):
        await returned_and_offered(client, observer, f"A{n}", f"P{n}", T0 + n * HOUR)
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
