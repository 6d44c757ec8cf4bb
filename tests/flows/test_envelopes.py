"""Envelopes between processes: ``flows.steps.Items`` pickles back to the same items, in order."""

from __future__ import annotations

import pickle
from datetime import date
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from flows.steps import Items
from operators.contract.events import Event
from operators.time.stream_items import Arrival, Marker, Progress, Signal

#: What ``orjson.loads`` can give (it refuses NaN and numbers beyond a double): an event's body is
#: the decoded JSON of its message.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
EVENTS = st.builds(
    Event,
    event_id=st.text(min_size=1),
    type=st.sampled_from(["sale", "product_view", "stock_counted"]),
    topic=st.sampled_from(["pos", "clickstream", "inventory"]),
    ts=st.integers(0, 2**45),
    body=st.dictionaries(st.text(), JSON, max_size=6),
)
ITEMS = st.one_of(
    EVENTS,
    st.builds(Arrival, EVENTS, st.text(), st.integers(-1, 2**45)),
    st.builds(Progress, st.integers(0, 7), st.integers(0, 2**45)),
    st.builds(Marker, st.text(), st.integers(-1, 2**45), st.integers(0, 2**45), st.booleans()),
    st.builds(Signal, st.just("customer_activity"), st.text(), st.integers(0, 2**45), st.text(), JSON),
)


@given(st.lists(ITEMS, max_size=30))
def test_an_envelope_pickles_back_to_the_same_items_in_order(items: list[Any]) -> None:
    envelope = Items(items)
    first = pickle.dumps((3, envelope))
    assert pickle.dumps((3, envelope)) == first  # Bytewax pickles a sent item twice: the same bytes
    shard, back = pickle.loads(first)
    assert shard == 3 and type(back) is Items
    assert back == items
    assert [type(item) for item in back] == [type(item) for item in items]
    for got, sent in zip(back, items, strict=True):
        if isinstance(sent, Event):
            assert type(got.body) is dict and got.body == sent.body


def test_a_body_that_is_not_plain_json_is_pickled_instead() -> None:
    event = Event("e1", "sale", "pos", 5, {"day": date(2026, 12, 4)})
    items = Items([event, Progress(0, 1)])
    back = pickle.loads(pickle.dumps(items))
    assert back == items and back[0].body["day"] == date(2026, 12, 4)
