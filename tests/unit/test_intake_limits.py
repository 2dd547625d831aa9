"""The depth scan that runs before any parser, and the limits the inbound models carry."""
from __future__ import annotations

import json
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.events.inbound import ANY_INBOUND, ArrivalRecorded
from shared.events.outbound import DeadLetter
from shared.limits import MAX_DEPTH, deeper_than, json_depth
from tests.support import factory as f

tricky_text = st.text(alphabet=st.sampled_from(list('[]{}"\\ab:,é\u202e\x00')), max_size=12)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), tricky_text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(tricky_text, inner, max_size=3)),
    max_leaves=40)


def depth_of(value) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(value=json_values, ascii_only=st.booleans(), indent=st.sampled_from([None, 1]))
def test_the_scan_counts_nesting_as_a_parser_would_with_strings_ignored(value, ascii_only, indent):
    raw = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode("utf-8")
    assert json_depth(raw) == depth_of(value)


@st.composite
def near_the_limit(draw) -> bytes:
    """JSON nested about as deep as the limit, often with more brackets in its strings than
    levels (so the bracket count alone cannot settle it), or bytes of the same alphabet."""
    if draw(st.booleans()):
        return draw(st.lists(st.sampled_from(list(b'[]{}"\\a:,')), max_size=120).map(bytes))
    value = draw(json_values)
    for _ in range(draw(st.integers(0, MAX_DEPTH + 4))):
        value = [value] if draw(st.booleans()) else {draw(tricky_text): value}
    return json.dumps(value, ensure_ascii=draw(st.booleans())).encode("utf-8")


@settings(max_examples=500, deadline=None)
@given(raw=near_the_limit(), limit=st.one_of(st.just(MAX_DEPTH), st.integers(0, MAX_DEPTH + 4)))
def test_counting_brackets_and_scanning_agree_on_deeper_than_the_limit(raw, limit):
    assert deeper_than(raw, limit) == (json_depth(raw) > limit)


def test_the_bracket_count_is_a_shortcut_and_the_scan_still_decides_the_rest():
    inside_strings = json.dumps({"a": "[{" * MAX_DEPTH}).encode()  # 65 brackets, depth 1
    assert not deeper_than(inside_strings, MAX_DEPTH)
    exactly = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert not deeper_than(exactly, MAX_DEPTH)
    assert deeper_than(b"[" + exactly + b"]", MAX_DEPTH)
    assert deeper_than(b"[" * (MAX_DEPTH + 1), MAX_DEPTH)  # unbalanced: the parser rejects it later


def test_the_scan_does_not_recurse_however_deep():
    deep = b"[" * (sys.getrecursionlimit() * 50)
    assert json_depth(deep) == len(deep)
    assert json_depth(deep, stop_above=32) == 33


def test_an_unterminated_string_full_of_escaped_quotes_is_scanned_in_linear_time():
    # a regex over whole strings would backtrack for minutes on this
    assert json_depth(b'{"a":"' + b'\\"' * 130_000) == 1


def test_inbound_limits_do_not_bind_outbound_events():
    letter = DeadLetter(event_id="00000000-0000-0000-0000-000000000000", occurred_at=f.T0, producer="t",
                        source_topic="t", partition=0, offset=0, error_code="too_large", error_detail="d",
                        raw_value_b64="A" * 300_000, raw_size=1, raw_sha256="0")
    assert len(letter.raw_value_b64) == 300_000


def test_the_internal_topics_revalidate_with_the_same_limits():
    doc = {**f.arrival("A1", f.T0), "landed_at": "9999-01-01T00:00:00+00:00"}
    try:
        ANY_INBOUND.validate_python(doc)
    except ValueError:
        pass
    else:
        raise AssertionError("year 9999 passed the inbound model")
    assert isinstance(ANY_INBOUND.validate_python(f.arrival("A1", f.T0)), ArrivalRecorded)
