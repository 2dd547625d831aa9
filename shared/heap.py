"""How a service's process collects garbage. A service keeps its whole state in memory (an
enforcement index of every person, matching's cases), and CPython's default thresholds
(700, 10, 10) make its collector walk those objects again and again while a replay adds to
them: with 20,000 arrivals waiting, matching's pairing ran at 1,487 pairs/s in process with the
defaults and 2,218 with the thresholds below (the domain alone 2,427 -> 6,059). Nearly all of
a service's garbage is freed by reference counting; the collector is only for cycles, so
collecting less often costs a little memory, not correctness.

And how its C allocator gives memory back. Objects over 512 bytes, the large buffers among
them (aiokafka's producer batches of up to 512 KiB, fetch responses, Redis replies), come from
the C library's malloc. glibc serves a request above its mmap threshold (128 KiB at start) with its own
mapping, unmapped when freed; but the first such block freed RAISES the threshold to its size
(up to 32 MiB), and from then on the 512 KiB batches come from the heap, whose free space
glibc returns to the system only from its top. `tune` fixes the threshold at 128 KiB through
glibc's `mallopt` (settings HEAP_MMAP_THRESHOLD_BYTES, HEAP_ARENA_MAX and
HEAP_TRIM_THRESHOLD_BYTES; 0 leaves glibc's own; the figures are in shared/settings.py), and
`settle` gives back the free pages a restore leaves between live blocks (malloc_trim). On
another C library neither does anything.
"""
from __future__ import annotations

import ctypes
import gc
import logging

from shared.settings import Settings

log = logging.getLogger("oioo.heap")

# the youngest generation is collected after this many allocations net of frees, the older
# ones after this many collections of the one below
THRESHOLDS = (50_000, 50, 100)


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def tune(settings: Settings | None = None) -> dict[str, int]:
    """Once, when the process starts. Returns the malloc parameters set (none off glibc)."""
    gc.set_threshold(*THRESHOLDS)
    settings = settings or Settings.from_env()
    return tune_malloc(settings.heap_mmap_threshold_bytes, settings.heap_arena_max,
                       settings.heap_trim_threshold_bytes)


def tune_malloc(mmap_threshold: int = 0, arena_max: int = 0, trim_threshold: int = 0) -> dict[str, int]:
    """Set what is not 0 through glibc's mallopt; {} where there is no glibc. A fixed mmap
    threshold (or trim threshold) also stops glibc moving both of them by itself."""
    wanted = {"M_MMAP_THRESHOLD": (M_MMAP_THRESHOLD, mmap_threshold), "M_ARENA_MAX": (M_ARENA_MAX, arena_max),
              "M_TRIM_THRESHOLD": (M_TRIM_THRESHOLD, trim_threshold)}
    if not any(value for _, value in wanted.values()):
        return {}
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return {}
    done = {}
    for name, (param, value) in wanted.items():
        if value:
            if mallopt(param, value) == 1:
                done[name] = value
            else:
                log.warning("mallopt(%s, %d) refused", name, value)
    if done:
        log.info("malloc: %s", ", ".join(f"{k}={v}" for k, v in done.items()))
    return done


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version"):  # glibc's own; a compatibility shim may lack it
        return None
    return libc


def _glibc_mallopt():
    libc = _glibc()
    mallopt = None if libc is None else getattr(libc, "mallopt", None)
    if mallopt is None:
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt


def settle() -> None:
    """After the state is loaded (restore and catch-up): collect once, then move everything
    alive to the permanent generation, so later collections never walk the restored state.
    Objects freed later are still freed (reference counting); only cycles among them stay.
    Then give back what the snapshot's bytes left free in the C heap: restored after the
    2018-2025 history, matching held 195 MB without that and 88 MB with it (about 50 ms)."""
    gc.collect()
    gc.freeze()
    trim()


def trim() -> bool:
    """Give the C heap's free pages back to the system, those between live blocks too
    (glibc's malloc_trim; free() gives back only the top of the heap). False off glibc."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    libc.malloc_trim.argtypes = (ctypes.c_size_t,)
    libc.malloc_trim.restype = ctypes.c_int
    libc.malloc_trim(0)
    return True
