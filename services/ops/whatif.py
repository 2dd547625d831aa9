"""`oioo whatif`: the recorded history replayed offline under the settings in force (the
baseline, which must reproduce what was published) and under an alternative, and what differs.

The replay runs the real matching and transfer services in process (whatif_replay); nothing
of the running system is touched: the history is read (or loaded from a file) and that is all.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from services.ops import whatif_output as show
from services.ops.whatif_check import check
from services.ops.whatif_diff import Facts, compare, tally
from services.ops.whatif_history import History
from services.ops.whatif_replay import PERSONAL_FIELDS, Scenario, replay
from shared.settings import Settings

WEEK = re.compile(r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$")
NATIONALITY = re.compile(r"^[A-Z]{3}$")
RULE_SETS = (Settings().rule_version,)  # the rule sets this code carries: one


class Refused(ValueError):
    """An option the what-if cannot honour; the message says why."""


@dataclass(frozen=True)
class Options:
    cap: int | None = None
    cap_weeks: dict[str, int] = field(default_factory=dict)
    priority: tuple[str, ...] | None = None
    scheme_end: date | None = None
    window_days: int | None = None
    rule_version: str | None = None
    first: str | None = None
    last: str | None = None
    out_dir: Path | None = None
    limit: int = 50


def week(text: str, option: str) -> str:
    if not WEEK.match(text):
        raise Refused(f"{option} {text!r} is not an ISO week such as 2025-W41")
    return text


def cap_weeks(values: list[str]) -> dict[str, int]:
    out = {}
    for v in values:
        name, sep, n = v.partition("=")
        if not sep or not n.strip().isdigit():
            raise Refused(f"--cap-week {v!r}: expected WEEK=N, e.g. 2025-W41=30")
        out[week(name.strip(), "--cap-week")] = int(n)
    return out


def priority(text: str) -> tuple[str, ...]:
    codes = tuple(p.strip().upper() for p in text.split(",") if p.strip())
    bad = [c for c in codes if not NATIONALITY.match(c)]
    if bad:
        raise Refused(f"--priority: {', '.join(bad)} is not a three-letter nationality code (ISO 3166 alpha-3)")
    return codes


def day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Refused(f"{option} {text!r} is not a date (YYYY-MM-DD)") from None


def scenario(base: Settings, o: Options) -> Scenario:
    if o.rule_version is not None and o.rule_version not in RULE_SETS:
        raise Refused(f"--rule-version {o.rule_version!r}: only one rule set exists, {', '.join(RULE_SETS)}; "
                      "there is no other to compare with")
    if o.cap is not None and o.cap < 0 or any(n < 0 for n in o.cap_weeks.values()):
        raise Refused("a cap is 0 or more")
    if o.window_days is not None and o.window_days < 1:
        raise Refused("--window-days is 1 or more")
    if o.first and o.last and o.first > o.last:
        raise Refused(f"--from {o.first} is after --to {o.last}")
    return Scenario.alternative(base, cap=o.cap, cap_weeks=o.cap_weeks, priority=o.priority,
                                scheme_end=o.scheme_end, window_days=o.window_days)


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:7.0f} records/s" if speed else "      ? records/s", style="progress.data.speed")


CHANGES = ("not selected", "later", "earlier", "newly selected", "decisions differ")


def people(subjects) -> str:
    """"246 not selected (132 arrivals, 114 applications), 133 later (...), ..."."""
    counts = tally(subjects)
    said = []
    for change in CHANGES:
        a, p = counts[("arrival", change)], counts[("application", change)]
        if a or p:
            name = "other Decisions differ" if change == "decisions differ" else change
            said.append(f"{a + p} {name} ({a} arrival(s), {p} application(s))")
    return f"{len(subjects)} person(s): " + ", ".join(said)


def run(history: History, o: Options, base_settings: Settings, console: Console) -> int:
    """0: the baseline reproduced what was published (the differences are shown); 1: it did not."""
    alternative = scenario(base_settings, o)
    baseline = Scenario(base_settings)
    t0 = time.monotonic()
    n = len(history.inputs)
    progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        RateColumn(), TimeElapsedColumn(), console=console)
    with progress:
        task = progress.add_task("baseline   ", total=n)
        base = replay(history.inputs, baseline, lambda k: progress.advance(task, k), history.particulars)
        result = check(((r.topic, r.value) for r in history.published), ((x.topic, x.value) for x in base.outputs),
                       o.first, o.last, base.without_particulars, PERSONAL_FIELDS)
        if result.passed:
            task = progress.add_task("alternative", total=n)
            alt = replay(history.inputs, alternative, lambda k: progress.advance(task, k), history.particulars)
    span = f"weeks {o.first or 'first'} to {o.last or 'last'}"
    console.print(f"{n} input record(s) of internal.enforcement.screened.v1 replayed; {span}", highlight=False)
    show.show_check(console, result)
    if not result.passed:
        console.print("the replay under the settings in force does not reproduce what the system published: "
                      "no what-if is shown (is this the environment the services ran with?)", highlight=False)
        return 1
    facts = Facts.of(history.inputs)
    diff = compare(base, alt, facts, o.first, o.last)
    said = alternative.describe(base_settings)
    console.print("alternative: " + ("; ".join(said) if said else "none (the settings in force)"), highlight=False)
    for name, done in (("baseline", base), ("alternative", alt)):
        for service in sorted({s for s, _ in done.set_aside}):
            k = sum(1 for s, _ in done.set_aside if s == service)
            console.print(f"{name}: {k} record(s) raised in {service} and were set aside, as the runtime "
                          "dead-letters them", highlight=False)
    console.print(show.weeks_table(diff.weeks))
    b, a = diff.ignored_movements
    console.print(f"recorded movements (answers, executions, failures, admitted arrivals) about a request or an offer "
                  f"that does not exist in the run, treated as [bold]ignored[/] (matching's own `ignored` Decision): "
                  f"baseline {b}, alternative {a}. A request only the alternative makes has no recorded answer: "
                  "France's silence lapses it at day 28.", highlight=False)
    if diff.subjects:
        if o.limit > 0:
            console.print(show.subjects_table(diff.subjects, o.limit))
        console.print(people(diff.subjects), highlight=False)
    weeks = sum(1 for w in diff.weeks if w.differs)
    console.print(f"[bold]{diff.count} difference{'' if diff.count == 1 else 's'}[/]: {len(diff.subjects)} "
                  f"person(s), {weeks} week(s)", highlight=False)
    if o.out_dir is not None:
        title = ("What if: " + ("; ".join(said) if said else "the settings in force")
                 + "\n(hatched and dashed: the alternative)")
        written = show.write_all(o.out_dir, diff, title)
        console.print(f"written: {written.subjects_csv}, {written.weeks_csv} and {written.png}", highlight=False)
    console.print(f"replayed twice in {time.monotonic() - t0:.1f}s", highlight=False)
    return 0
