"""A what-if, shown: Rich tables on the terminal; with --out, two CSVs and a PNG of both runs."""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from services.ops.whatif_check import Check
from services.ops.whatif_diff import FIGURES, Diff, Step, Subject, WeekRow

COLUMNS = (*FIGURES, "cumulative_balance")
SHORT = {"pairs_formed": "pairs", "returns_requested": "requested", "returns_executed": "executed",
         "admissions_offered": "offered", "cumulative_balance": "balance"}


def show_check(console: Console, result: Check, limit: int = 20) -> None:
    if result.without_particulars:
        console.print(f"{result.without_particulars} ReturnRequested compared without the particulars (names, date "
                      "of birth, nationality, landing): they are no longer in the history (intake's particulars "
                      "are kept 30 days)", highlight=False)
    if result.passed:
        console.print(f"[bold green]baseline check passed[/]: {result.compared} published Decision, "
                      "ReturnRequested, ReturnRequestWithdrawn and AdmissionOffered event(s) reproduced "
                      "with the same ids and contents", highlight=False)
        return
    console.print(f"[bold red]baseline check FAILED[/]: {result.problems} difference(s) among "
                  f"{result.compared} published event(s)", highlight=False)
    t = Table(title="published vs replayed under the settings in force")
    for col in ("event_id", "event_type", "problem"):
        t.add_column(col, overflow="fold")
    rows = ([(i, k, "published, not reproduced (missing)") for i, k in result.missing]
            + [(c.event_id, c.event_type, "changed: " + ", ".join(c.fields)) for c in result.changed]
            + [(i, k, "reproduced, never published (extra)") for i, k in result.extra])
    for row in rows[:limit]:
        t.add_row(*row)
    console.print(t)
    if len(rows) > limit:
        console.print(f"... and {len(rows) - limit} more", highlight=False)


def _cell(a: int, b: int) -> str:
    return f"{a} | {b}" if a == b else f"{a} | [bold yellow]{b}[/]"


def weeks_table(rows: list[WeekRow]) -> Table:
    t = Table(title="per week: baseline | alternative (changed figures highlighted)")
    t.add_column("week")
    for name in COLUMNS:
        t.add_column(SHORT[name], justify="right")
    for r in rows:
        t.add_row(r.week + (" *" if r.differs else ""), *(_cell(r.base[n], r.alt[n]) for n in COLUMNS))
    return t


UUID_TAIL = re.compile(r"([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _step(s: Step | None) -> str:
    # request ids cut to their first 8 digits on the terminal (the CSV has them whole)
    return "— (no further Decision)" if s is None else UUID_TAIL.sub(r"\1…", s.said())


def subjects_table(subjects: list[Subject], limit: int) -> Table:
    t = Table(title=f"people whose Decisions differ ({len(subjects)}; {min(limit, len(subjects))} shown)")
    for col in ("subject", "kind", "change", "selected (base → alt)", "baseline: first differing Decision",
                "alternative: first differing Decision"):
        t.add_column(col, overflow="fold")
    order = {"not selected": 0, "newly selected": 1, "later": 2, "earlier": 3, "decisions differ": 4}
    for s in sorted(subjects, key=lambda s: (order.get(s.change, 9), s.kind, s.subject))[:limit]:
        t.add_row(s.subject, s.kind, s.change, f"{s.base_week or '—'} → {s.alt_week or '—'}", _step(s.base_step),
                  _step(s.alt_step))
    return t


@dataclass(frozen=True)
class Written:
    subjects_csv: Path
    weeks_csv: Path
    png: Path


def write_subjects_csv(path: Path, subjects: list[Subject]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["subject", "kind", "change", "baseline_selected_week", "alternative_selected_week",
                      "baseline_decision", "baseline_reasons", "baseline_at", "alternative_decision",
                      "alternative_reasons", "alternative_at"])
        for s in subjects:
            row = [s.subject, s.kind, s.change, s.base_week or "", s.alt_week or ""]
            for step in (s.base_step, s.alt_step):
                row += ["", "", ""] if step is None else [step.decision, " ".join(step.reasons), step.at]
            out.writerow(row)


def write_weeks_csv(path: Path, rows: list[WeekRow]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["week", *(f"{run}_{n}" for n in COLUMNS for run in ("baseline", "alternative"))])
        for r in rows:
            out.writerow([r.week, *(v for n in COLUMNS for v in (r.base[n], r.alt[n]))])


def write_png(path: Path, rows: list[WeekRow], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    x = list(range(len(rows)))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    w = 0.2
    bars = (("pairs_formed", "baseline", -1.5, "#1d70b8", None), ("pairs_formed", "alternative", -0.5, "#1d70b8", "//"),
            ("admissions_offered", "baseline", 0.5, "#f47738", None),
            ("admissions_offered", "alternative", 1.5, "#f47738", "//"))
    for name, run, shift, colour, hatch in bars:
        values = [(r.base if run == "baseline" else r.alt)[name] for r in rows]
        top.bar([i + shift * w for i in x], values, w, color=colour, alpha=1.0 if hatch is None else 0.45,
                hatch=hatch, edgecolor=colour, label=f"{name.replace('_', ' ')} ({run})")
    for run, style in (("baseline", "-"), ("alternative", "--")):
        top.plot(x, [(r.base if run == "baseline" else r.alt)["returns_executed"] for r in rows], style,
                 marker="o", color="#505a5f", label=f"returns executed ({run})")
    highest = max([1] + [max(r.base[n], r.alt[n]) for r in rows for n in FIGURES])
    top.set_ylim(0, highest * 1.45)
    top.set_ylabel("per week")
    top.set_title(title)
    top.legend(loc="upper center", ncol=3, fontsize=8)
    top.grid(axis="y", alpha=0.3)
    bottom.plot(x, [r.base["cumulative_balance"] for r in rows], "-", marker="o", color="#00703c",
                label="cumulative balance (baseline)")
    bottom.plot(x, [r.alt["cumulative_balance"] for r in rows], "--", marker="s", color="#d4351c",
                label="cumulative balance (alternative)")
    bottom.axhline(0, color="#b1b4b6", linewidth=0.8)
    bottom.set_ylabel("executed − offered, to date")
    bottom.legend(loc="upper left", fontsize=8)
    bottom.grid(axis="y", alpha=0.3)
    bottom.set_xticks(x, [r.week for r in rows], rotation=45, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(out_dir: Path, diff: Diff, title: str) -> Written:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = Written(out_dir / "whatif-subjects.csv", out_dir / "whatif-weeks.csv", out_dir / "whatif.png")
    write_subjects_csv(written.subjects_csv, diff.subjects)
    write_weeks_csv(written.weeks_csv, diff.weeks)
    write_png(written.png, diff.weeks, title)
    return written
