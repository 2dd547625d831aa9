"""The Joint Committee report: weekly figures as CSV and a chart as PNG, from ops.balance.v1.

Each week's row is that week's latest WeeklyBalance, exactly as published (the one writer
publishes in order, so the latest record is the week's figures). Weeks with no WeeklyBalance
have no row: nothing happened in them that the system counted.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from services.ops.figures import BALANCE_FIELDS


@dataclass(frozen=True)
class Written:
    csv: Path
    png: Path
    weeks: list[str]


def write_csv(path: Path, balances: dict[str, dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(BALANCE_FIELDS)
        for week in sorted(balances):
            b = balances[week]
            out.writerow([str(b.get(n)).lower() if isinstance(b.get(n), bool) else b.get(n) for n in BALANCE_FIELDS])


def write_png(path: Path, balances: dict[str, dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    weeks = sorted(balances)
    rows = [balances[w] for w in weeks]
    x = list(range(len(weeks)))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]})
    width = 0.38
    top.bar([i - width / 2 for i in x], [r["returns_executed"] for r in rows], width,
            label="returns executed", color="#1d70b8")
    top.bar([i + width / 2 for i in x], [r["admissions_offered"] for r in rows], width,
            label="admissions offered", color="#f47738")
    # one dash per week: a step line would vanish for a single week
    top.hlines([r["cap"] for r in rows], [i - 0.45 for i in x], [i + 0.45 for i in x], color="#d4351c",
               linestyles="--", label="weekly cap")
    highest = max([0] + [max(r["cap"], r["returns_executed"], r["admissions_offered"]) for r in rows])
    top.set_ylim(0, max(1, highest) * 1.3)  # headroom for the legend above the cap line
    top.set_ylabel("per week")
    top.set_title(title)
    top.legend(loc="upper center", ncol=3)
    top.grid(axis="y", alpha=0.3)
    executed = [r["cumulative_returns_executed"] for r in rows]
    offered = [r["cumulative_admissions_offered"] for r in rows]
    bottom.plot(x, executed, marker="o", color="#1d70b8", label="cumulative returns executed")
    bottom.plot(x, offered, marker="s", color="#f47738", label="cumulative admissions offered")
    bottom.bar(x, [e - o for e, o in zip(executed, offered)], 0.5, color="#505a5f", alpha=0.35,
               label="cumulative balance (executed − offered)")
    bottom.set_ylabel("scheme to date")
    bottom.legend(loc="upper left")
    bottom.grid(axis="y", alpha=0.3)
    bottom.set_xticks(x, weeks, rotation=45, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out_dir: Path, balances: dict[str, dict], first: str, last: str) -> Written:
    """CSV and PNG for the weeks first..last (inclusive) among `balances` (latest per week)."""
    chosen = {w: b for w, b in balances.items() if first <= w <= last}
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"weekly-balance-{first}-to-{last}"
    written = Written(out_dir / f"{stem}.csv", out_dir / f"{stem}.png", sorted(chosen))
    write_csv(written.csv, chosen)
    write_png(written.png, chosen, f"One in, one out: weekly balance {first} to {last}")
    return written
