"""The service process's collector settings (shared/heap.py)."""
import gc

import pytest

from shared import heap
from shared.settings import Settings


def test_tune_collects_the_young_generation_less_often():
    before = gc.get_threshold()
    try:
        heap.tune(Settings(heap_mmap_threshold_bytes=0))
        assert gc.get_threshold() == heap.THRESHOLDS
        assert gc.get_threshold()[0] > before[0]
    finally:
        gc.set_threshold(*before)


def test_settle_moves_the_loaded_state_out_of_later_collections():
    state = {f"case-{i}": {"facts": [i]} for i in range(1000)}
    try:
        heap.settle()
        assert gc.get_freeze_count() >= len(state)
        # what is frozen is still alive and still freed by reference counting
        assert state["case-7"]["facts"] == [7]
    finally:
        gc.unfreeze()


def test_tune_fixes_glibcs_mmap_threshold_where_there_is_glibc(monkeypatch):
    calls = []
    monkeypatch.setattr(heap, "_glibc_mallopt", lambda: lambda param, value: calls.append((param, value)) or 1)
    before = gc.get_threshold()
    try:
        assert heap.tune(Settings()) == {"M_MMAP_THRESHOLD": 128 * 1024}
    finally:
        gc.set_threshold(*before)
    assert calls == [(heap.M_MMAP_THRESHOLD, 128 * 1024)]
    calls.clear()
    assert heap.tune_malloc(0, 2, 256 * 1024) == {"M_ARENA_MAX": 2, "M_TRIM_THRESHOLD": 256 * 1024}
    assert calls == [(heap.M_ARENA_MAX, 2), (heap.M_TRIM_THRESHOLD, 256 * 1024)]
    calls.clear()
    assert heap.tune_malloc(0, 0, 0) == {} and calls == []  # 0: glibc's own behaviour


def test_a_refused_setting_is_not_reported_as_set(monkeypatch):
    monkeypatch.setattr(heap, "_glibc_mallopt", lambda: lambda param, value: 0)
    assert heap.tune_malloc(128 * 1024) == {}


def test_without_glibc_tune_sets_nothing(monkeypatch):
    monkeypatch.setattr(heap, "_glibc_mallopt", lambda: None)
    assert heap.tune_malloc(128 * 1024, 2) == {}


@pytest.mark.skipif(heap._glibc_mallopt() is None, reason="not glibc")
def test_glibcs_mallopt_accepts_the_default():
    assert heap.tune_malloc(Settings().heap_mmap_threshold_bytes) == {"M_MMAP_THRESHOLD": 128 * 1024}


def test_the_heap_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("HEAP_MMAP_THRESHOLD_BYTES", "0")
    monkeypatch.setenv("HEAP_ARENA_MAX", "2")
    s = Settings.from_env()
    assert (s.heap_mmap_threshold_bytes, s.heap_arena_max, s.heap_trim_threshold_bytes) == (0, 2, 0)
    monkeypatch.delenv("HEAP_MMAP_THRESHOLD_BYTES")
    assert Settings.from_env().heap_mmap_threshold_bytes == 128 * 1024


def test_settle_gives_the_free_heap_back(monkeypatch):
    trimmed = []
    monkeypatch.setattr(heap, "trim", lambda: trimmed.append(True) or True)
    try:
        heap.settle()
    finally:
        gc.unfreeze()
    assert trimmed == [True]


def test_trim_is_glibcs_malloc_trim_and_nothing_elsewhere(monkeypatch):
    assert heap.trim() == (heap._glibc() is not None)
    monkeypatch.setattr(heap, "_glibc", lambda: None)
    assert heap.trim() is False
