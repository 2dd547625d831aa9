"""Event time: ISO weeks in Europe/London, RFC 3339 formatting, exact day durations."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
DAY = timedelta(days=1)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso_week(instant: datetime) -> str:
    """The ISO week ("2025-W33") of an instant, as a calendar in Europe/London sees it."""
    year, week, _ = instant.astimezone(LONDON).isocalendar()
    return f"{year}-W{week:02d}"


def week_start(week: str) -> datetime:
    """The instant a London ISO week begins (Monday 00:00 Europe/London)."""
    year, num = week.split("-W")
    monday = date.fromisocalendar(int(year), int(num), 1)
    return datetime(monday.year, monday.month, monday.day, tzinfo=LONDON)


def parse_time(text: str) -> datetime:
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError(f"time without offset: {text!r}")
    return dt


def fmt(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def add_months(dt: datetime, months: int) -> datetime:
    """Calendar months (the visa's 'offer + 3 months'), clamped to the month's last day."""
    month0 = dt.month - 1 + months
    year, month = dt.year + month0 // 12, month0 % 12 + 1
    for day in range(dt.day, 27, -1):
        try:
            return dt.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    return dt.replace(year=year, month=month, day=min(dt.day, 28))
