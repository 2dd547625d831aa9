"""Intake writes its accepted envelope without building the model: the bytes must be the model's."""
from hypothesis import given, settings, strategies as st

from shared.events.internal import AcceptedEvent, accepted_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(topic=st.text(max_size=40), partition=st.integers(0, 2**31), offset=st.integers(0, 2**62),
       event=st.dictionaries(st.text(max_size=12), json_values, max_size=8))
def test_the_accepted_envelope_is_the_models_own_json(topic, partition, offset, event):
    model = AcceptedEvent(source_topic=topic, source_partition=partition, source_offset=offset, event=event)
    assert accepted_json(topic, partition, offset, event) == model.model_dump_json().encode()
