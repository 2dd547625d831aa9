"""The sorted queues against the plainest model: a list sorted after every change."""
from hypothesis import given, settings, strategies as st

from services.matching import queues
from services.matching.queues import SortedQueue

ops = st.lists(st.tuples(st.sampled_from(["put", "remove"]), st.integers(0, 60), st.integers(0, 40)), max_size=400)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_a_queue_is_always_in_order_and_holds_exactly_what_was_put(steps):
    queues.LOAD, load = 2, queues.LOAD  # tiny buckets: splits and empty buckets happen often
    try:
        q: SortedQueue[int] = SortedQueue()
        model: dict[int, tuple] = {}
        for op, ident, rank in steps:
            if op == "put":
                q.put(ident, (rank, ident), ident)
                model[ident] = (rank, ident)
            else:
                q.remove(ident)
                model.pop(ident, None)
            assert list(q) == [i for _, i in sorted((k, i) for i, k in model.items())]
            assert len(q) == len(model) and all(i in q for i in model)
    finally:
        queues.LOAD = load
