"""Records pickled as a call of their class: the same object back, and snapshots written before still load."""

from __future__ import annotations

import gc
import pickle
from typing import Any

import pytest

from operators.contract.events import Event
from operators.customers.records import CustomerFacts
from operators.promotions.attribution import OpenPromotion
from operators.promotions.state import Armed
from operators.state.pickling import FREEZE_ABOVE, collector_paused
from operators.time.stream_items import Marker, Output, Progress, Signal

RECORDS: list[Any] = [
    Event("e1", "sale", "pos", 5, {"store_id": "S1", "lines": [{"sku": "A", "qty": 1, "unit_price": 2.5}]}),
    Marker("pos:0", 5, seen_at=7, caught_up=True),
    Progress(3, 100, "identity", live=120),
    Signal("activity", "C1", 5, "e1:0", {"any": "body"}),
    Output("alerts", "k", {"v": 1}, 5),
    CustomerFacts("C1", True, marketing_consent=True, consent_channels=("email",), cart=(("A", 1, 2_500),)),
    Armed("cart_reminder", "C1", "e1", ("A",), "left"),
    OpenPromotion("p1", "cart_reminder", "SAVE10", False, 5, 10, 20),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_a_record_comes_back_equal_and_as_a_call_of_its_class(record: Any) -> None:
    assert pickle.loads(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)) == record
    cls, args = record.__reduce__()
    assert cls is type(record) and cls(*args) == record


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_a_record_pickled_the_dataclass_way_still_loads(record: Any) -> None:
    cls = type(record)
    reduce = cls.__dict__["__reduce__"]
    del cls.__reduce__  # as snapshots of earlier versions were written
    try:
        old = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        cls.__reduce__ = reduce
    assert pickle.loads(old) == record


def test_output_keeps_its_event_time_which_equality_ignores() -> None:
    output = Output("alerts", "k", {"v": 1}, 5)
    assert pickle.loads(pickle.dumps(output)).ts_ms == 5


def test_the_collector_is_paused_in_the_block_and_a_large_one_is_frozen_after() -> None:
    enabled, frozen = gc.isenabled(), gc.get_freeze_count()
    try:
        gc.enable()
        with collector_paused():
            assert not gc.isenabled()
            small = [[n] for n in range(1_000)]
        assert gc.isenabled() and gc.get_freeze_count() == frozen  # a small block: nothing frozen
        with collector_paused():
            large = [[n] for n in range(FREEZE_ABOVE + 1_000)]
        assert gc.isenabled() and gc.get_freeze_count() >= frozen + len(large)
        assert small and large
    finally:
        gc.unfreeze()
        if not enabled:
            gc.disable()
