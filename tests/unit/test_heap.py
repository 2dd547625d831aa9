"""The service process's collector settings (shared/heap.py)."""
import gc

from shared import heap


def test_tune_collects_the_young_generation_less_often():
    before = gc.get_threshold()
    try:
        heap.tune()
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
