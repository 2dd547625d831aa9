"""How a service's process collects garbage. A service keeps its whole state in memory (an
enforcement index of every person, matching's cases), and CPython's default thresholds
(700, 10, 10) make its collector walk those objects again and again while a replay adds to
them: with 20,000 arrivals waiting, matching's pairing ran at 1,487 pairs/s in process with the
defaults and 2,218 with the thresholds below (the domain alone 2,427 -> 6,059). Nearly all of
a service's garbage is freed by reference counting; the collector is only for cycles, so
collecting less often costs a little memory, not correctness.
"""
from __future__ import annotations

import gc

# the youngest generation is collected after this many allocations net of frees, the older
# ones after this many collections of the one below
THRESHOLDS = (50_000, 50, 100)


def tune() -> None:
    """Once, when the process starts."""
    gc.set_threshold(*THRESHOLDS)


def settle() -> None:
    """After the state is loaded (restore and catch-up): collect once, then move everything
    alive to the permanent generation, so later collections never walk the restored state.
    Objects freed later are still freed (reference counting); only cycles among them stay."""
    gc.collect()
    gc.freeze()
