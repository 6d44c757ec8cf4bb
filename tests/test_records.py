"""fast_init: the same record as the dataclass's own __init__ builds, still frozen."""

from __future__ import annotations

import inspect
import pickle
from dataclasses import FrozenInstanceError, dataclass, field, fields

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators.contract.events import Event
from operators.customers.records import Activity, CustomerFacts
from operators.records import fast_init
from operators.time.stream_items import Marker, Output, Progress, Signal
from operators.time.timers import Timer


@dataclass(frozen=True, slots=True)
class Plain:
    name: str
    count: int = 0
    tags: tuple[str, ...] = ()


@fast_init
@dataclass(frozen=True, slots=True)
class Fast:
    name: str
    count: int = 0
    tags: tuple[str, ...] = ()


@given(st.text(), st.integers(), st.lists(st.text(), max_size=3).map(tuple))
def test_builds_what_the_dataclass_builds(name: str, count: int, tags: tuple[str, ...]) -> None:
    for args, kwargs in [((name,), {}), ((name, count), {}), ((name,), {"tags": tags}),
                         ((), {"name": name, "count": count, "tags": tags})]:  # fmt: skip
        fast, plain = Fast(*args, **kwargs), Plain(*args, **kwargs)
        assert (fast.name, fast.count, fast.tags) == (plain.name, plain.count, plain.tags)
        assert pickle.loads(pickle.dumps(fast)) == fast
        assert hash(fast) == hash(Fast(*args, **kwargs))


def test_keeps_the_signature_and_refuses_bad_calls() -> None:
    assert inspect.signature(Fast) == inspect.signature(Plain)
    with pytest.raises(TypeError):
        Fast()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Fast("a", 1, (), 4)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Fast("a", nope=1)  # type: ignore[call-arg]


def test_the_record_stays_frozen() -> None:
    record = Fast("a")
    with pytest.raises(FrozenInstanceError):
        record.count = 2  # type: ignore[misc]


def test_the_flow_records_use_it() -> None:
    for record in (Event, Output, Signal, Progress, Marker, Timer, CustomerFacts, Activity):
        assert f"_set_{fields(record)[0].name}" in record.__init__.__globals__, record  # made by fast_init
    event = Event("e1", "sale", "pos", 5, {"x": 1})
    assert (event.event_id, event.type, event.topic, event.ts, event.body) == ("e1", "sale", "pos", 5, {"x": 1})
    assert Output("alerts", "k", {"a": 1}).ts_ms is None
    assert Signal("s", "k", 1, "o", None).body is None


def test_refuses_what_it_cannot_build() -> None:
    with pytest.raises(TypeError, match="frozen, slotted"):
        fast_init(dataclass(slots=True)(type("Loose", (), {"__annotations__": {"x": "int"}})))
    with pytest.raises(TypeError, match="plain defaults"):

        @fast_init
        @dataclass(frozen=True, slots=True)
        class Factory:
            items: list[int] = field(default_factory=list)

    with pytest.raises(TypeError, match="__post_init__"):

        @fast_init
        @dataclass(frozen=True, slots=True)
        class Checked:
            x: int

            def __post_init__(self) -> None:
                pass
