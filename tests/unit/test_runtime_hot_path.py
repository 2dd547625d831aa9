"""The runtime's per-record path made cheaper, proven equal to what it replaced (hypothesis):
the trace context, the outbox entry (the same bytes), the records' JSON (the same values, read
back by json.loads), the relay's headers and the key -> partition choice (aiokafka's own)."""
from __future__ import annotations

import hashlib
import json
import math

from aiokafka import ConsumerRecord
from aiokafka.partitioner import DefaultPartitioner, murmur2 as aiokafka_murmur2
from hypothesis import given, settings, strategies as st

from shared.batch import JSON_HEADERS, TRACEPARENT, BatchContext, Outgoing, encode_outbox, trace_of
from shared.partitioner import BULK_MIN, murmur2, murmur2_many, partition_for, partitions_for
from shared.relay import _headers
from shared.state import encode_record


# ---- what the code did before ---------------------------------------------------------------
def trace_before(rec: ConsumerRecord, place: str) -> str:
    digest = hashlib.sha256(place.encode()).hexdigest()
    incoming = next((v for k, v in (rec.headers or ()) if k == TRACEPARENT), b"")
    parts = incoming.decode("ascii", "replace").split("-") if incoming else []
    valid = len(parts) == 4 and len(parts[1]) == 32 and all(c in "0123456789abcdef" for c in parts[1]) \
        and parts[1] != "0" * 32
    trace_id = parts[1] if valid else digest[16:48]
    return f"00-{trace_id}-{digest[:16]}-01"


OUTBOX_BEFORE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
RECORD_BEFORE = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


def headers_before(trace: str | None) -> list[tuple[str, bytes]]:
    return [(k, v.encode()) for k, v in ({**JSON_HEADERS, TRACEPARENT: trace} if trace else JSON_HEADERS).items()]


# ---- the trace context ------------------------------------------------------------------------
HEX = "0123456789abcdef"
trace_ids = st.one_of(st.text(HEX, min_size=32, max_size=32), st.just("0" * 32),
                      st.text(HEX + "ABCDEF-g", min_size=30, max_size=34))
field = st.text(HEX + "-x", max_size=4)
traceparents = st.one_of(
    st.builds(lambda a, t, b, c: f"{a}-{t}-{b}-{c}".encode(), field, trace_ids, field, field),
    st.builds(lambda a, t, b, c, junk: f"{a}-{t}-{b}-{c}".encode() + junk, field, trace_ids, field, field,
              st.sampled_from([b"\xff", b"\n", b"-", b"\xc3\xa9"])),
    st.builds(lambda t, junk: b"00-" + junk + t.encode() + b"-0123456789abcdef-01", trace_ids,
              st.sampled_from([b"", b"\xff", b"\xc3"])),
    st.binary(max_size=60), st.just(b""), st.none())
headers = st.lists(st.tuples(st.sampled_from([TRACEPARENT, "content-type", "TRACEPARENT"]), traceparents), max_size=3)


@settings(max_examples=600)
@given(headers, st.integers(0, 10**9))
def test_the_trace_context_is_the_one_computed_before(hs, offset):
    rec = ConsumerRecord("t", 0, offset, 0, 0, None, b"{}", None, 0, 2, hs)
    place = f"t:0:{offset}"
    assert trace_of(rec, place) == trace_before(rec, place)


def test_a_valid_producer_trace_is_continued_and_a_missing_one_derived_from_the_place():
    rec = ConsumerRecord("t", 0, 5, 0, 0, None, b"{}", None, 0, 2,
                         [(TRACEPARENT, b"00-" + b"ab" * 16 + b"-0123456789abcdef-01")])
    assert trace_of(rec, "t:0:5").split("-")[1] == "ab" * 16
    bare = ConsumerRecord("t", 0, 5, 0, 0, None, b"{}", None, 0, 2, [])
    assert trace_of(bare, "t:0:5") == trace_of(bare, "t:0:5") != trace_of(bare, "t:0:6")


# ---- the outbox entry and the records ---------------------------------------------------------
keys = st.one_of(st.none(), st.text(max_size=20))


@settings(max_examples=400)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=10), keys, st.text(max_size=40), st.one_of(st.none(), st.text(max_size=60))),
                max_size=5))
def test_the_outbox_entry_is_the_same_bytes(messages):
    out = [Outgoing(t, k, v.encode("utf-8", "surrogatepass"), {**JSON_HEADERS, **({TRACEPARENT: tr} if tr else {})})
           for t, k, v, tr in messages]
    try:
        before = OUTBOX_BEFORE([[o.topic, o.key, o.value.decode("utf-8"), o.headers.get(TRACEPARENT)]
                                for o in out]).encode("utf-8")
    except (UnicodeError, TypeError) as exc:  # a lone surrogate: refused before, refused now
        try:
            encode_outbox(out)
        except type(exc):
            return
        raise AssertionError("accepted what was refused before")
    assert encode_outbox(out) == before


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**80, 2**80), st.floats(), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=20)


def same(a, b) -> bool:
    """Equal as JSON values, NaN equal to NaN and ints apart from floats."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def has_float(value) -> bool:
    if isinstance(value, dict):
        return any(has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(has_float(v) for v in value)
    return isinstance(value, float)


@settings(max_examples=500)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_a_record_reads_back_as_what_was_written_before(record):
    try:
        before = RECORD_BEFORE(record)
    except (TypeError, ValueError) as exc:
        try:
            encode_record(record)
        except type(exc):
            return
        raise AssertionError("accepted what was refused before")
    now = encode_record(record)
    assert isinstance(now, bytes) and same(json.loads(now), json.loads(before))
    if all(32 <= c < 127 for c in now) and not has_float(record):
        assert now == before.encode()  # no text escaped, no float spelt otherwise: the same bytes


def test_records_json_dumps_writes_otherwise_still_read_the_same():
    for record in ({"nan": float("nan"), "none": None}, {"inf": [float("-inf")], "x": None}, {"big": 2**64},
                   {"é": "ü😀", "a": 1.5e16}, {1: "int key"}):
        assert same(json.loads(encode_record(record)), json.loads(RECORD_BEFORE(record)))


# ---- the batch --------------------------------------------------------------------------------
def test_first_time_keeps_the_event_time_and_the_clock():
    from datetime import datetime, timezone
    ctx = BatchContext({"old"}, high=50.0)
    when = datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert ctx.first_time("a", when) and not ctx.first_time("a", when) and not ctx.first_time("old")
    assert ctx.first_time("b") and ctx.changes.seen == ["a", "b"]
    assert ctx.changes.seen_at == {"a": when.timestamp()} and ctx.high == when.timestamp()


# ---- the relay --------------------------------------------------------------------------------
@given(st.one_of(st.none(), st.just(""), st.text(max_size=60)))
def test_the_headers_are_the_ones_built_before(trace):
    assert _headers(trace) == headers_before(trace)


@settings(max_examples=1000)
@given(st.binary(max_size=80))
def test_murmur2_is_aiokafkas(key):
    assert murmur2(key) == aiokafka_murmur2(key)


@settings(max_examples=500)
@given(st.binary(max_size=50), st.lists(st.integers(0, 200), min_size=1, max_size=12, unique=True))
def test_a_key_goes_to_the_partition_aiokafka_chooses(key, partitions):
    available = partitions[::2]
    assert partition_for(key, partitions, available) == DefaultPartitioner()(key, partitions, available)
    assert partition_for(bytearray(key), partitions, available) == DefaultPartitioner()(key, partitions, available)


@settings(max_examples=300)
@given(st.integers(0, 70).flatmap(lambda n: st.lists(st.binary(min_size=n, max_size=n), min_size=1, max_size=60)))
def test_many_keys_of_one_length_hash_as_aiokafka_does_one_by_one(keys):
    # every lane pattern: lengths with and without a tail, all-0xff bytes that carry furthest
    assert murmur2_many(keys, len(keys[0])) == [aiokafka_murmur2(k) for k in keys]


def test_the_lanes_never_carry_into_each_other():
    worst = [b"\xff" * 39, b"\x00" * 39, b"\xff" * 39, b"\x80" * 39] * 8
    assert murmur2_many(worst, 39) == [aiokafka_murmur2(k) for k in worst]


@settings(max_examples=300)
@given(st.lists(st.one_of(st.none(), st.binary(max_size=6), st.binary(min_size=36, max_size=36)), max_size=3 * BULK_MIN),
       st.lists(st.integers(0, 200), min_size=1, max_size=12, unique=True))
def test_a_topics_keys_go_where_aiokafka_puts_each(keys, partitions):
    # many keys of one length (hashed together), a few of others (one by one), and no key
    available = partitions[::2]
    chosen = partitions_for(keys, partitions, available)
    assert len(chosen) == len(keys)
    for key, partition in zip(keys, chosen):
        if key is None:
            assert partition in (available or partitions)
        else:
            assert partition == DefaultPartitioner()(key, partitions, available)


def test_no_key_goes_to_an_available_partition_as_aiokafka_does():
    assert {partition_for(None, [0, 1, 2], [1]) for _ in range(20)} == {1}
    assert {partition_for(None, [0, 1, 2], []) for _ in range(200)} == {0, 1, 2}
