"""`oioo whatif` on histories recorded in process (tests/unit/test_whatif_world.py): the
baseline reproduces what was published, and each alternative changes exactly what it should."""
from __future__ import annotations

import csv
import json
import pytest

from services.matching import rules
from services.ops.cli import main
from services.ops.whatif_check import check
from services.ops.whatif_diff import Facts, compare
from services.ops.whatif_history import History, Logged, load_history, write_history
from services.ops.whatif_replay import PERSONAL_FIELDS, Scenario, replay
from shared import topics as T
from shared.settings import Settings
from tests.support.factory import DAY, HOUR, MINUTE, T0, arrival, cap_set, eoi, vetted
from tests.unit.test_whatif_world import Recorder

W36, W37 = "2025-W36", "2025-W37"


def five_pairs_in_one_week() -> History:
    """Five arrivals and five vetted applicants on Monday of W36; three weeks of clock."""
    r = Recorder()
    r.at(cap_set(W36, 50, T0 - HOUR))
    for i in range(5):
        r.at(arrival(f"A{i}", T0 + i * MINUTE))
        r.at(eoi(f"P{i}", T0 + HOUR + i * MINUTE))
        r.at(vetted(f"P{i}", T0 + 2 * HOUR + i * MINUTE))
    r.ticks(T0, 21)
    return r.run()


def priority_history() -> History:
    """Two Syrians apply first, an Eritrean (a priority nationality) later; then two arrivals."""
    r = Recorder()
    for i, (app, nationality) in enumerate((("P-SYR-1", "SYR"), ("P-SYR-2", "SYR"), ("P-ERI", "ERI"))):
        r.at(eoi(app, T0 + i * HOUR, nationality=nationality))
        r.at(vetted(app, T0 + i * HOUR + MINUTE))
    r.at(arrival("A0", T0 + 5 * HOUR))
    r.at(arrival("A1", T0 + 6 * HOUR))
    r.ticks(T0, 10)
    return r.run()


def run(history: History, scenario: Scenario):
    return replay(history.inputs, scenario, particulars=history.particulars)


def runs(history: History, **alternative):
    base = run(history, Scenario(Settings()))
    alt = run(history, Scenario.alternative(Settings(), **alternative))
    return base, alt, compare(base, alt, Facts.of(history.inputs))


def published(history: History):
    return [(r.topic, r.value) for r in history.published]


def replayed(run):
    return [(o.topic, o.value) for o in run.outputs]


def changes(diff) -> dict[str, str]:
    return {s.subject: s.change for s in diff.subjects}


def test_with_no_alternative_the_baseline_check_passes_and_nothing_differs():
    history = five_pairs_in_one_week()
    base, alt, diff = runs(history)
    result = check(published(history), replayed(base))
    assert result.passed and result.compared == sum(1 for r in history.published)
    kinds = {json.loads(r.value)["event_type"] for r in history.published}
    assert {"Decision", "ReturnRequested", "AdmissionOffered"} <= kinds
    assert diff.count == 0 and diff.subjects == [] and diff.ignored_movements == (0, 0)
    assert [(w.week, w.base["pairs_formed"]) for w in diff.weeks] == [(W36, 5)]


def test_a_lower_cap_forms_fewer_pairs_and_names_who_loses_their_place():
    history = five_pairs_in_one_week()
    _, _, diff = runs(history, cap=3)  # the log's WeeklyCapSet (50) is overridden too
    weeks = {w.week: w for w in diff.weeks}
    assert (weeks[W36].base["pairs_formed"], weeks[W36].alt["pairs_formed"]) == (5, 3)
    assert (weeks[W36].base["admissions_offered"], weeks[W36].alt["admissions_offered"]) == (5, 3)
    # the two youngest arrivals and the two latest applicants wait for the next week's places
    assert changes(diff) == {"A3": "later", "A4": "later", "P3": "later", "P4": "later"}
    assert {(s.base_week, s.alt_week) for s in diff.subjects} == {(W36, W37)}
    assert weeks[W37].alt["pairs_formed"] == 2
    # France answered and the escorts executed the baseline's requests, not these: ignored
    assert diff.ignored_movements == (0, 2 + 2 + 2)  # 2 answers, 2 executions, 2 admitted arrivals
    a3 = next(s for s in diff.subjects if s.subject == "A3")
    assert a3.base_step.decision == "paired" and a3.alt_step.reasons == ("unknown_request",)


def test_a_cap_for_one_week_is_the_same_as_that_cap_everywhere_when_only_that_week_pairs():
    history = five_pairs_in_one_week()
    _, _, by_week = runs(history, cap_weeks={W36: 3})
    _, _, everywhere = runs(history, cap=3)
    assert changes(by_week) == changes(everywhere)
    assert {w.week: w.alt for w in by_week.weeks}[W36]["pairs_formed"] == 3


def test_without_eritrean_priority_the_eritrean_loses_the_place_to_the_second_syrian():
    history = priority_history()
    base, alt, diff = runs(history, priority=("AFG",))
    assert check(published(history), replayed(base)).passed
    assert changes(diff) == {"P-ERI": "not selected", "P-SYR-2": "newly selected", "P-SYR-1": "decisions differ"}
    eri = next(s for s in diff.subjects if s.subject == "P-ERI")
    assert eri.base_step.decision == "paired" and "priority_nationality" in eri.base_step.reasons
    # the Eritrean's recorded arrival under an offer the alternative never made is ignored
    assert diff.ignored_movements == (0, 1)
    assert all(w.base["pairs_formed"] == w.alt["pairs_formed"] for w in diff.weeks)


def test_a_shorter_request_window_closes_a_case_that_waited_for_an_applicant():
    r = Recorder()
    r.at(arrival("A0", T0))
    r.at(eoi("P0", T0 + 10 * DAY))
    r.at(vetted("P0", T0 + 10 * DAY + MINUTE))
    r.ticks(T0, 20)
    _, _, diff = runs(r.run(), window_days=7)
    assert changes(diff) == {"A0": "not selected", "P0": "not selected"}
    a0 = next(s for s in diff.subjects if s.subject == "A0")
    assert (a0.alt_step.decision, a0.alt_step.reasons) == ("ineligible", ("request_window_expired",))


def test_the_window_setting_defaults_to_the_treaty_s_fourteen_days(monkeypatch):
    assert Settings().request_window_days == 14 == rules.REQUEST_WINDOW.days
    assert rules.request_window_closes(T0) == T0 + 14 * DAY
    monkeypatch.setenv("REQUEST_WINDOW_DAYS", "10")
    assert Settings.from_env().request_window_days == 10


def test_the_baseline_check_names_an_altered_a_missing_and_an_extra_event():
    history = five_pairs_in_one_week()
    base = run(history, Scenario(Settings()))
    i = next(n for n, r in enumerate(history.published) if json.loads(r.value)["event_type"] == "ReturnRequested")
    doc = json.loads(history.published[i].value)
    doc["week"] = W37
    altered = [(r.topic, json.dumps(doc).encode() if n == i else r.value) for n, r in enumerate(history.published)]
    result = check(altered, replayed(base))
    assert not result.passed
    assert [(c.event_id, c.event_type, c.fields) for c in result.changed] == [(doc["event_id"], "ReturnRequested",
                                                                                ("week",))]
    assert result.missing == [] and result.extra == []
    gone = check(published(history)[1:], replayed(base))
    first = json.loads(history.published[0].value)
    assert gone.extra == [(first["event_id"], first["event_type"])] and not gone.missing


def test_an_unreadable_input_record_is_set_aside_and_the_rest_replays_as_recorded():
    history = five_pairs_in_one_week()
    history.inputs.insert(3, Logged(T.ENFORCEMENT_SCREENED, 0, 999, None, b'{"not": "screened"}'))
    base = run(history, Scenario(Settings()))
    assert base.set_aside == [("matching", 3)]
    assert check(published(history), replayed(base)).passed


def test_an_event_delivered_twice_is_filtered_as_the_runtime_filters_it():
    r = Recorder()
    first = arrival("A0", T0)
    r.at(first)
    r.at(dict(first))  # at-least-once: the same event again
    r.at(eoi("P0", T0 + HOUR))
    r.at(vetted("P0", T0 + HOUR))
    r.ticks(T0, 5)
    history = r.run()
    base = run(history, Scenario(Settings()))
    assert check(published(history), replayed(base)).passed
    assert sum(1 for o in base.outputs if o.topic == T.OPS_AUDIT and o.doc["subject_ref"] == "A0"
               and o.doc["decision"] == "eligible") == 1


def test_particulars_read_after_the_request_still_give_the_same_request():
    history = five_pairs_in_one_week()
    history.particulars.reverse()  # transfer reads them after the instructions that need them
    base = run(history, Scenario(Settings()))
    assert check(published(history), replayed(base), without_particulars=base.without_particulars,
                 personal=PERSONAL_FIELDS).passed
    assert base.without_particulars == set()


def test_requests_whose_particulars_are_gone_are_checked_on_everything_else():
    history = five_pairs_in_one_week()
    gone = history.particulars[:2]  # past the 30-day retention: no longer on the topic
    del history.particulars[:2]
    base = run(history, Scenario(Settings()))
    result = check(published(history), replayed(base), without_particulars=base.without_particulars,
                   personal=PERSONAL_FIELDS)
    assert result.passed and result.without_particulars == 2 and len(base.without_particulars) == 2
    requested = [json.loads(o.value) for o in base.outputs if o.topic == T.LIAISON_UK_RETURN_REQUESTS]
    stood_in = [r for r in requested if r["event_id"] in base.without_particulars]
    assert {r["arrival_id"] for r in stood_in} == {json.loads(p.value)["arrival_id"] for p in gone}
    assert all(r["family_name"] == "(not in the history)" for r in stood_in)
    # and what else they say is still held to what was published
    i = next(n for n, r in enumerate(history.published)
             if json.loads(r.value).get("event_id") in base.without_particulars)
    doc = json.loads(history.published[i].value)
    doc["reply_due_by"] = "2025-12-01T00:00:00Z"
    history.published[i] = Logged(history.published[i].topic, 0, 0, None, json.dumps(doc).encode())
    caught = check(published(history), replayed(base), without_particulars=base.without_particulars,
                   personal=PERSONAL_FIELDS)
    assert [(c.event_id, c.fields) for c in caught.changed] == [(doc["event_id"], ("reply_due_by",))]


def test_weeks_outside_from_to_are_not_compared():
    history = five_pairs_in_one_week()
    base, alt, _ = runs(history, cap=3)
    assert compare(base, alt, Facts.of(history.inputs), W37, W37).weeks[0].week == W37
    assert {s.subject for s in compare(base, alt, Facts.of(history.inputs), W37, W37).subjects} == {
        "A3", "A4", "P3", "P4"}  # their W37 decisions differ
    assert compare(base, alt, Facts.of(history.inputs), "2025-W40", "2025-W41").count == 0


# ---- the command ----------------------------------------------------------------------------

@pytest.fixture
def history_file(tmp_path, monkeypatch):
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("COLUMNS", "250")
    path = tmp_path / "history.jsonl"
    write_history(path, five_pairs_in_one_week())
    return path


def test_the_history_file_keeps_every_record_as_it_was(tmp_path):
    history = five_pairs_in_one_week()
    path = tmp_path / "h.jsonl"
    write_history(path, history)
    again = load_history(path)
    assert again.inputs == history.inputs and again.particulars == history.particulars and history.particulars
    assert sorted(again.published, key=repr) == sorted(history.published, key=repr)
    assert path.stat().st_mode & 0o077 == 0  # it holds personal data, as the topics do


def test_oioo_whatif_with_no_alternative_says_zero_differences(history_file, capsys):
    # no stack anywhere (--env names a file that is not there): a history file needs none
    assert main(["--env", str(history_file.parent / "none.env"), "whatif", "--input", str(history_file)]) == 0
    said = capsys.readouterr().out
    assert "baseline check passed" in said and "0 differences" in said


def test_oioo_whatif_with_a_lower_cap_prints_the_weeks_and_writes_csvs_and_a_chart(history_file, tmp_path, capsys):
    out_dir = tmp_path / "out"
    assert main(["whatif", "--input", str(history_file), "--cap", "3", "--out", str(out_dir)]) == 0
    said = capsys.readouterr().out
    assert "5 | 3" in said and "A3" in said and "later" in said and "ignored" in said
    with (out_dir / "whatif-subjects.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["subject"] for r in rows) == ["A3", "A4", "P3", "P4"]
    assert all("Doe" not in json.dumps(r) for r in rows)  # ids, never names
    with (out_dir / "whatif-weeks.csv").open() as f:
        weeks = {r["week"]: r for r in csv.DictReader(f)}
    assert (weeks[W36]["baseline_pairs_formed"], weeks[W36]["alternative_pairs_formed"]) == ("5", "3")
    assert (out_dir / "whatif.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_oioo_whatif_exits_non_zero_and_names_the_event_when_a_published_one_was_altered(history_file, tmp_path,
                                                                                         capsys):
    lines = history_file.read_text().splitlines()
    n = next(i for i, line in enumerate(lines) if '"AdmissionOffered' in line)
    record = json.loads(lines[n])
    doc = json.loads(record["value"])
    doc["visa_valid_until"] = "2026-01-01T00:00:00Z"
    lines[n] = json.dumps({**record, "value": json.dumps(doc)})
    history_file.write_text("\n".join(lines) + "\n")
    assert main(["whatif", "--input", str(history_file), "--cap", "3"]) == 1
    said = capsys.readouterr().out
    assert "baseline check FAILED" in said and doc["event_id"] in said and "visa_valid_until" in said
    assert "5 | 3" not in said  # no what-if on a baseline that does not hold


def test_oioo_whatif_accepts_the_rule_set_in_force_and_refuses_any_other(history_file, capsys):
    assert main(["whatif", "--input", str(history_file), "--rule-version", Settings().rule_version]) == 0
    assert main(["whatif", "--input", str(history_file), "--rule-version", "oioo-rules-2.0"]) == 2
    said = capsys.readouterr().err
    assert "only one rule set exists" in said and "oioo-rules-1.0" in said


def test_oioo_whatif_says_so_when_the_history_is_empty(history_file, capsys):
    history_file.write_text("")
    assert main(["whatif", "--input", str(history_file)]) == 2
    assert "nothing to replay" in capsys.readouterr().err


@pytest.mark.parametrize("args, words", [
    (["--cap-week", "2025-W41"], "WEEK=N"), (["--cap-week", "2025-W60=3"], "ISO week"),
    (["--priority", "ERITREA"], "three-letter"), (["--scheme-end", "soon"], "YYYY-MM-DD"),
    (["--from", "2025-W40", "--to", "2025-W39"], "after"), (["--window-days", "0"], "1 or more"),
])
def test_oioo_whatif_refuses_options_it_cannot_honour(history_file, capsys, args, words):
    assert main(["whatif", "--input", str(history_file), *args]) == 2
    assert words in capsys.readouterr().err
