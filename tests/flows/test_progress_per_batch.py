"""A shard tells the stages downstream how far it has got at most once per batch, after all the
batch's outputs: each progress record goes to every shard of every stage it feeds, and the last
one of a batch supersedes the others (a watermark only moves forward).

Through the steps the flow runs (``flows.steps``), without Bytewax.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flows import steps
from operators.contract.events import Event
from operators.time.shard import DomainShard
from operators.time.stream_items import Arrival, Marker, Output, Progress
from operators.time.timers import Timer


class Echo:
    """Publishes each event it applies and each timer it fires (one per event, 50 ms on)."""

    def on_event(self, event: Event, shard: DomainShard[Echo]) -> list[Output]:
        shard.timers.schedule(event.event_id, event.ts + 50, None)
        return [Output("alerts", event.event_id, {"applied": event.event_id}, event.ts)]

    def on_timer(self, timer: Timer[str], shard: DomainShard[Echo]) -> list[Output]:
        return [Output("alerts", timer.key, {"fired": timer.key}, timer.deadline)]

    def on_watermark(self, shard: DomainShard[Echo]) -> list[Output]:
        return []


def _event(event_id: str, ts: int) -> Event:
    return Event(event_id, "search", "clickstream", ts, {})


def _stage(ordered: bool) -> steps.RunDomain:
    return steps.RunDomain(lambda _shard: Echo(), upstreams=2, ordered=ordered, stage="echo", name="echo")


items = st.lists(
    st.one_of(
        st.builds(lambda n, ts: _event(f"e{n}", ts), st.integers(0, 30), st.integers(0, 1_000)),
        st.builds(lambda up, wm: Progress(up, wm), st.integers(0, 1), st.integers(0, 1_100)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(items, st.lists(st.integers(1, 8), min_size=1, max_size=40), st.booleans())
def test_a_domain_shard_sends_one_progress_per_batch_and_the_same_outputs_however_batched(
    stream: list[Any], sizes: list[int], ordered: bool
) -> None:
    one_by_one, batched = _stage(ordered), _stage(ordered)
    state: Any = None
    expected: list[Any] = []
    for item in stream:
        state, outputs = one_by_one.apply(state, [(0, [item])])
        expected.extend(o for o in outputs if not isinstance(o, Progress))
    final = None if state is None else state.watermark

    state, got, start, cuts = None, [], 0, iter(sizes * 40)
    while start < len(stream):
        batch = stream[start : start + next(cuts)]
        start += len(batch)
        before = None if state is None else state.watermark
        half = len(batch) // 2  # a batch of two envelopes, as from two upstream batches
        state, outputs = batched.apply(state, [(0, batch[:half]), (0, batch[half:])])
        sent = [o for o in outputs if isinstance(o, Progress)]
        if state.watermark == before:
            assert sent == []
        else:  # one record, the last of the batch, with where the shard got to
            assert sent == [Progress(0, state.watermark, "echo")] and outputs[-1] is sent[0]
        got.extend(o for o in outputs if not isinstance(o, Progress))

    assert got == expected
    assert (None if state is None else state.watermark) == final


def test_a_sequence_shard_sends_one_progress_per_batch_after_its_events() -> None:
    step = steps.Sequence(lateness_ms=100, idle_timeout_ms=60_000, dedupe_horizon_ms=60_000, partitions=2)
    logic = step(None)
    batch: list[tuple[int, list[Any]]] = [
        (0, [
            Marker("clickstream:0", 1_000, seen_at=0),  # one partition heard from: no watermark yet
            Arrival(_event("a", 1_200), "clickstream:1", 1_200),
            Marker("clickstream:1", 1_200, seen_at=0),  # both: the watermark is 900
        ]),
        (0, [
            Arrival(_event("b", 1_500), "clickstream:0", 1_500),
            Marker("clickstream:0", 1_500, seen_at=0),  # 1,100
        ]),
    ]
    out, _ = logic.on_batch(batch)
    assert out == [_event("a", 1_200), _event("b", 1_500), Progress(0, 1_100)]

    out, _ = logic.on_batch([(0, [Marker("clickstream:0", 1_600, seen_at=0)])])  # the minimum stays
    assert out == []
