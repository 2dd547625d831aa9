"""Memory forgets the event ids below the horizon now and then (shared/batch_loop.py,
`time_to_forget`): never an id inside the horizon, each id walked a bounded number of times
however fast event time moves (a replay's batch spans days), and never much more remembered
than the horizon holds (a quarter more)."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from shared.batch_loop import time_to_forget

DAY = 86400.0
HORIZON = 120 * DAY


def _run(batches: list[tuple[int, float]]) -> tuple[int, int]:
    """Commit `batches` (ids, event-time step) as the runner does, checking after each that
    every id inside the horizon is remembered; returns ids inserted and ids walked."""
    seen: dict[str, float] = {}
    high, forgot_at, kept, inserted, walked = 0.0, 0.0, 0, 0, 0
    for n, (ids, step) in enumerate(batches):
        high += step
        for i in range(ids):
            seen[f"{n}-{i}"] = high
        inserted += ids
        floor = high - HORIZON
        if time_to_forget(high, forgot_at, len(seen), kept):
            walked += len(seen)
            seen = {k: v for k, v in seen.items() if v >= floor}
            forgot_at, kept = high, len(seen)
        # every id inside the horizon is still remembered
        assert all(f"{m}-{i}" in seen for m, (c, _) in enumerate(batches[:n + 1]) for i in range(c)
                   if _time(batches, m) >= floor)
    return inserted, walked


def _time(batches: list[tuple[int, float]], m: int) -> float:
    return sum(step for _, step in batches[:m + 1])


def test_a_replay_walks_each_id_a_few_times_not_once_a_batch():
    # the 2018-2025 replay: about 250 batches of 1,000 events, each spanning about 12 days
    batches = [(1000, 12 * DAY)] * 250
    inserted, walked, _, _ = _run_fast(batches)
    assert walked <= 5 * inserted  # forgetting after every batch walked about 11 times as many


def _run_fast(batches):
    seen: dict[str, float] = {}
    high, forgot_at, kept, inserted, walked = 0.0, 0.0, 0, 0, 0
    for n, (ids, step) in enumerate(batches):
        high += step
        seen.update({f"{n}-{i}": high for i in range(ids)})
        inserted += ids
        if time_to_forget(high, forgot_at, len(seen), kept):
            walked += len(seen)
            seen = {k: v for k, v in seen.items() if v >= high - HORIZON}
            forgot_at, kept = high, len(seen)
    return inserted, walked, seen, kept


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.floats(0, 20 * DAY)), min_size=1, max_size=60))
def test_nothing_inside_the_horizon_is_forgotten_and_each_id_is_walked_a_few_times(batches):
    inserted, walked = _run(batches)
    assert walked <= 5 * inserted


def test_live_traffic_still_forgets():
    # 150 events a day for three years: memory stays near the horizon's 18,000 ids
    _, _, seen, kept = _run_fast([(150, DAY)] * (3 * 365))
    assert len(seen) <= 1.25 * 150 * 121 + 150
