"""Unit tests of the event-time building blocks: timers, watermarks, dedupe, shards."""

from __future__ import annotations

import pickle
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.contract.events import Event
from operators.state.store import EntityStore
from operators.time import shard as shard_module
from operators.time.dedupe import Deduplicator
from operators.time.sequencer import Sequencer
from operators.time.shard import DomainShard
from operators.time.stream_items import Marker, Output, Progress, Signal, pack_items
from operators.time.timers import Timer, TimerQueue
from operators.time.watermark import PartitionWatermark, UpstreamWatermark

# -- TimerQueue ----------------------------------------------------------------

timer_ops = st.lists(
    st.one_of(
        st.tuples(st.just("schedule"), st.sampled_from("abcdefgh"), st.integers(0, 100)),
        st.tuples(st.just("cancel"), st.sampled_from("abcdefgh"), st.just(0)),
        st.tuples(st.just("pop"), st.just(""), st.integers(0, 100)),
    ),
    max_size=60,
)


@given(timer_ops)
def test_timer_queue_matches_a_dict_model(ops: list[tuple[str, str, int]]) -> None:
    timers: TimerQueue[int] = TimerQueue()
    model: dict[str, int] = {}
    for op, key, value in ops:
        if op == "schedule":
            timers.schedule(key, value, value)
            model[key] = value
        elif op == "cancel":
            assert timers.cancel(key) == (key in model)
            model.pop(key, None)
        else:
            fired = [(t.deadline, t.key) for t in timers.pop_due(value)]
            expected = sorted((d, k) for k, d in model.items() if d <= value)
            assert fired == expected
            for _, k in expected:
                del model[k]
        assert len(timers) == len(model)
        assert timers.next_deadline() == (min(model.values()) if model else None)
    restored = pickle.loads(pickle.dumps(timers))
    assert sorted((t.deadline, t.key) for t in restored.pop_due(10**9)) == sorted((d, k) for k, d in model.items())


timer_ops_with_discard = st.lists(
    st.one_of(
        st.tuples(st.just("schedule"), st.sampled_from("abcdefgh"), st.integers(0, 100)),
        st.tuples(st.just("cancel"), st.sampled_from("abcdefgh"), st.just(0)),
        st.tuples(st.sampled_from(["pop", "discard", "next"]), st.just(""), st.integers(0, 100)),
    ),
    max_size=60,
)


@given(timer_ops_with_discard)
def test_discard_due_and_pop_next_act_as_pop_due(ops: list[tuple[str, str, int]]) -> None:
    """Two queues fed the same operations: one only ever pops (the model), one discards and pops singly."""
    model: TimerQueue[int] = TimerQueue()
    timers: TimerQueue[int] = TimerQueue()
    for op, key, value in ops:
        if op == "schedule":
            model.schedule(key, value, value)
            timers.schedule(key, value, value)
        elif op == "cancel":
            assert timers.cancel(key) == model.cancel(key)
        elif op == "discard":
            assert timers.discard_due(value) == len(list(model.pop_due(value)))
        elif op == "next" and len(model):
            assert timers.pop_next() == next(model.pop_due(10**9))
        else:
            assert list(timers.pop_due(value)) == list(model.pop_due(value))
        assert len(timers) == len(model) and timers.next_deadline() == model.next_deadline()


def test_timers_scheduled_while_firing_fire_if_due() -> None:
    timers: TimerQueue[str] = TimerQueue()
    timers.schedule("a", 10, "first")
    fired = []
    for timer in timers.pop_due(50):
        fired.append(timer.key)
        if timer.key == "a":
            timers.schedule("b", 20, "chained")
            timers.schedule("c", 60, "later")
    assert fired == ["a", "b"]
    assert timers.keys() == ["c"]


def test_rescheduling_many_times_keeps_the_heap_small() -> None:
    timers: TimerQueue[None] = TimerQueue()
    for i in range(10_000):
        timers.schedule("k", i, None)
    assert len(timers) == 1
    assert len(timers._heap) < 200


# -- watermarks ------------------------------------------------------------------


@given(st.lists(st.tuples(st.sampled_from(["p0", "p1", "p2"]), st.integers(0, 10_000)), max_size=80))
def test_partition_watermark_is_the_minimum_while_every_partition_delivers(observations: list[tuple[str, int]]) -> None:
    wm = PartitionWatermark(lateness_ms=50, idle_timeout_ms=60_000, partitions=3)
    latest: dict[str, int] = {}
    previous = None
    for now, (partition, ts) in enumerate(observations):
        wm.observe(partition, ts, now_ms=now)  # one marker a millisecond: nobody is idle
        latest[partition] = max(latest.get(partition, ts), ts)
        if len(latest) < 3:
            assert wm.value is None  # a partition not heard from may still deliver old events
            continue
        assert wm.value is not None
        assert previous is None or wm.value >= previous
        assert wm.value == max(previous or -(10**9), min(latest.values()) - 50)
        previous = wm.value


def test_a_quiet_partition_stops_holding_the_watermark_after_the_idle_timeout() -> None:
    wm = PartitionWatermark(lateness_ms=0, idle_timeout_ms=1_000, partitions=2)
    wm.observe("p0", 100, now_ms=0)
    wm.observe("p1", 100, now_ms=0)
    wm.observe("p0", 900, now_ms=500)
    assert wm.value == 100  # p1 was heard from 500 ms ago: it still counts
    wm.observe("p0", 5_000, now_ms=1_500)
    assert wm.value == 5_000  # p1 silent for 1.5 s of wall time: idle
    assert wm.is_late(4_999) and not wm.is_late(5_000)


def test_a_partition_never_heard_from_counts_as_quiet_after_the_idle_timeout() -> None:
    wm = PartitionWatermark(lateness_ms=0, idle_timeout_ms=1_000, partitions=2)
    assert not wm.observe("p0", 100, now_ms=0)
    assert not wm.observe("p0", 200, now_ms=1_000)
    assert wm.observe("p0", 300, now_ms=1_001) and wm.value == 300


@given(
    st.lists(
        st.tuples(st.sampled_from(["p0", "p1", "p2"]), st.integers(0, 10_000), st.booleans(), st.integers(0, 500)),
        max_size=80,
    )
)
def test_caught_up_changes_nothing_when_no_partition_is_live(
    observations: list[tuple[str, int, bool, int]],
) -> None:
    # A replay of an old log: every event arrives long after its time, so no partition is
    # live and the watermark depends on the log alone, caught up or not.
    plain = PartitionWatermark(lateness_ms=50, idle_timeout_ms=60_000, partitions=3, live_lateness_ms=0)
    marked = PartitionWatermark(lateness_ms=50, idle_timeout_ms=60_000, partitions=3, live_lateness_ms=0)
    now = 1_000_000
    for partition, ts, caught_up, wait in observations:
        now += wait
        assert marked.observe(partition, ts, now, caught_up) == plain.observe(partition, ts, now)
        marked.tick(now + 1)
        plain.tick(now + 1)
        assert marked.value == plain.value == marked.live_value == plain.live_value


def test_live_caught_up_partitions_run_on_with_the_wall_clock() -> None:
    wm = PartitionWatermark(lateness_ms=30_000, idle_timeout_ms=60_000, partitions=2, live_lateness_ms=250)
    wm.observe("p0", 10_000_000, now_ms=10_000_020, caught_up=True)
    wm.observe("p1", 10_000_500, now_ms=10_000_510, caught_up=True)
    # p0 has run on by 490 ms of wall time since its event arrived; p1 has just delivered.
    assert (wm.value, wm.live_value) == (10_000_490 - 30_000, 10_000_490 - 250)
    # Nothing arrives for two minutes: neither partition goes idle, both move with the clock.
    assert wm.tick(10_120_020)
    assert (wm.value, wm.live_value) == (10_090_000, 10_119_750)
    assert wm.is_late(10_089_999) and not wm.is_late(10_090_000)


def test_a_live_partition_that_is_behind_holds_the_watermark_at_its_latest_event() -> None:
    wm = PartitionWatermark(lateness_ms=30_000, idle_timeout_ms=60_000, partitions=2, live_lateness_ms=250)
    wm.observe("p0", 10_000_000, now_ms=10_000_000, caught_up=True)
    wm.observe("p1", 10_000_000, now_ms=10_000_000, caught_up=False)  # more to read
    wm.tick(10_005_000)
    assert (wm.value, wm.live_value) == (10_000_000 - 30_000, 10_000_000 - 250)
    wm.observe("p1", 10_004_000, now_ms=10_005_000, caught_up=True)
    assert (wm.value, wm.live_value) == (10_004_000 - 30_000, 10_004_000 - 250)


def test_a_partition_that_is_not_live_counts_with_allowed_lateness() -> None:
    wm = PartitionWatermark(lateness_ms=30_000, idle_timeout_ms=60_000, partitions=2, live_lateness_ms=250)
    wm.observe("live", 10_000_000, now_ms=10_000_000, caught_up=True)
    wm.observe("backlog", 9_000_000, now_ms=10_000_000, caught_up=True)  # read 1,000 s after its time
    assert (wm.value, wm.live_value) == (9_000_000 - 30_000, 9_000_000 - 30_000)


def test_an_empty_partition_waits_for_the_idle_timeout_even_when_caught_up() -> None:
    # Empty now, it may still get events older than the others' (a log produced after the
    # flow started): they would all be late if it did not hold the watermark back.
    wm = PartitionWatermark(lateness_ms=0, idle_timeout_ms=1_000, partitions=2)
    assert not wm.observe("empty", -1, now_ms=0, caught_up=True)
    assert not wm.observe("p0", 500, now_ms=10)
    assert wm.tick(1_001) and wm.value == 500


def test_a_restart_gives_every_partition_a_fresh_idle_timeout() -> None:
    wm = PartitionWatermark(lateness_ms=0, idle_timeout_ms=1_000, partitions=3)
    wm.observe("p0", 100, now_ms=0)
    wm.observe("p1", 200, now_ms=900)
    wm.observe("p0", 100, now_ms=900)
    assert wm.tick(1_001) and wm.value == 100  # p2 never heard from: quiet after the timeout
    copy = pickle.loads(pickle.dumps(wm))
    copy.resume(now_ms=60_000)  # an hour of downtime later
    assert not copy.observe("p1", 5_000, now_ms=60_010)  # p0 still holds it back
    assert not copy.observe("p0", 5_000, now_ms=60_020)  # and p2 may deliver old events yet
    assert copy.tick(61_005) and copy.value == 5_000


def test_partition_watermark_reads_state_written_before_live_partitions() -> None:
    wm = PartitionWatermark.__new__(PartitionWatermark)
    wm.__setstate__((30_000, 60_000, 1, {"p0": 1_000_000}, {"p0": 5_000_000}, 4_000_000, 5_000_000, 970_000))
    assert (wm.value, wm.live_value, wm.live_lateness_ms) == (970_000, 970_000, 30_000)
    assert wm.observe("p0", 1_100_000, now_ms=5_001_000) and wm.value == wm.live_value == 1_070_000


def test_partition_watermark_pickles_with_its_live_state() -> None:
    wm = PartitionWatermark(lateness_ms=30_000, idle_timeout_ms=60_000, partitions=1, live_lateness_ms=250)
    wm.observe("p0", 10_000_000, now_ms=10_000_000, caught_up=True)
    copy = pickle.loads(pickle.dumps(wm))
    assert copy.tick(10_001_000) and wm.tick(10_001_000)
    assert (copy.value, copy.live_value) == (wm.value, wm.live_value) == (9_971_000, 10_000_750)


def test_upstream_watermark_waits_for_every_upstream() -> None:
    wm = UpstreamWatermark(upstreams=3)
    assert not wm.report(0, 10) and not wm.report(1, 20)
    assert wm.value is None
    assert wm.report(2, 5) and wm.value == 5
    assert not wm.report(2, 4)  # never backwards
    assert wm.report(2, 30) and wm.value == 10


# -- dedupe and the sequencer ------------------------------------------------------


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["pos", "inventory"]),
                          st.integers(0, 5_000)), max_size=60))  # fmt: skip
def test_deduplicator_matches_a_model_while_nothing_expires(events: list[tuple[str, str, int]]) -> None:
    seen = Deduplicator(horizon_ms=10_000)
    first: set[tuple[str, str]] = set()
    for event_id, topic, ts in events:
        assert seen.is_duplicate(event_id, ts, topic) == ((topic, event_id) in first)
        first.add((topic, event_id))


def test_deduplicator_forgets_after_the_horizon() -> None:
    seen = Deduplicator(horizon_ms=1_000)
    assert not seen.is_duplicate("a", 0, "pos")
    assert seen.expire(watermark=1_000) == 0  # the horizon is inclusive
    assert seen.is_duplicate("a", 0, "pos")
    assert seen.expire(watermark=1_001) == 1
    assert len(seen) == 0


def test_ids_kept_before_they_were_kept_by_topic_still_catch_their_copies() -> None:
    """State written by a release that kept bare ids: after a restore, a copy of such an id is
    still a duplicate, until the last of them expires; then only the topic's own ids count."""
    old = Deduplicator(horizon_ms=1_000)
    old._expiry.schedule("a", 1_000, None)  # "a" taken at stamp 0 by the earlier release
    del old.scoped  # its pickle has no such attribute
    restored = pickle.loads(pickle.dumps(old))
    assert not restored.scoped
    restored.scope_ids()
    assert restored.is_duplicate("a", 500, "pos")
    assert not restored.is_duplicate("b", 500, "pos") and restored.is_duplicate("b", 600, "pos")
    assert restored.expire(watermark=1_001) == 1
    assert not restored.is_duplicate("a", 1_600, "inventory")  # bare ids all gone: checked by topic only
    assert restored.is_duplicate("a", 1_700, "inventory") and not restored.is_duplicate("a", 1_700, "pos")


def _event(event_id: str, ts: int) -> Event:
    return Event(event_id, "search", "clickstream", ts, {})


def test_the_same_id_on_two_topics_is_two_events() -> None:
    """A till's sale and a warehouse's receipt numbered by their own producers: both are taken,
    whichever arrives first (a repeat on one topic is still a duplicate)."""
    seq = Sequencer(0, lateness_ms=100, idle_timeout_ms=10_000, dedupe_horizon_ms=60_000, partitions=2)
    sale = Event("X1", "sale", "pos", 1_000, {})
    receipt = Event("X1", "stock_received", "inventory", 1_000, {})
    assert [seq.admit(e, s).duplicate for e, s in ((receipt, "inventory:0"), (sale, "pos:0"), (sale, "pos:0"))] == [
        False, False, True]  # fmt: skip


def test_sequencer_flags_late_events_and_reports_progress_once() -> None:
    seq = Sequencer(3, lateness_ms=100, idle_timeout_ms=10_000, dedupe_horizon_ms=60_000, partitions=1)
    assert seq.advance(Marker("clickstream:0", 1_000, seen_at=0)) == Progress(3, 900)
    assert seq.advance(Marker("clickstream:0", 1_000, seen_at=5)) is None
    assert seq.admit(_event("e1", 899)).late
    assert not seq.admit(_event("e2", 900)).late
    restored = pickle.loads(pickle.dumps(seq))
    assert restored.admit(_event("e1", 899)).duplicate


# -- the domain shard ------------------------------------------------------------


class Reminder:
    """A test domain: every event sets a reminder ``delay`` ms after it, per session."""

    def __init__(self, delay: int) -> None:
        self.delay = delay

    def on_event(self, event: Event, shard: DomainShard[Reminder]) -> list[Output]:
        shard.timers.schedule(f"remind:{event.event_id}", event.ts + self.delay, event.event_id)
        return []

    def on_timer(self, timer: Timer[str], shard: DomainShard[Reminder]) -> list[Output]:
        return [Output("alerts", timer.payload, {"deadline": timer.deadline, "watermark": shard.watermark})]

    def on_watermark(self, shard: DomainShard[Reminder]) -> list[Output]:
        return []


@settings(max_examples=50)
@given(
    st.lists(st.integers(0, 10_000), min_size=1, max_size=30),
    st.lists(st.integers(0, 20_000), min_size=1, max_size=30),
)
def test_shard_fires_each_timer_once_after_the_watermark_passes(times: list[int], progress: list[int]) -> None:
    shard = DomainShard(Reminder(delay=500), upstreams=2)
    for i, ts in enumerate(times):
        shard.on_event(_event(f"e{i}", ts))
    fired: list[Output] = []
    for step, watermark in enumerate(sorted(progress)):
        fired += shard.on_progress(Progress(step % 2, watermark))
        fired += shard.on_progress(Progress((step + 1) % 2, watermark))
    final = max(progress)
    due = sorted((ts + 500, f"e{i}") for i, ts in enumerate(times) if ts + 500 < final)
    assert sorted((o.value["deadline"], o.key) for o in fired) == due
    assert all(o.value["deadline"] < o.value["watermark"] for o in fired)


def test_a_late_event_s_timer_fires_at_once_not_at_the_next_progress() -> None:
    shard = DomainShard(Reminder(delay=500), upstreams=1)
    shard.on_progress(Progress(0, 10_000))
    fired = shard.on_event(_event("late", 1_000))  # deadline 1,500 is long past
    assert [(o.key, o.value["deadline"]) for o in fired] == [("late", 1_500)]
    assert shard.on_event(_event("on-time", 9_800)) == []  # deadline 10,300 is not


class Recorder:
    """Records the items an ordered shard applies, in order."""

    def __init__(self) -> None:
        self.applied: list[tuple[int, str]] = []

    def on_event(self, event: Event, shard: DomainShard[Recorder]) -> list[Output]:
        self.applied.append((event.ts, event.event_id))
        return []

    def on_timer(self, timer: Timer[str], shard: DomainShard[Recorder]) -> list[Output]:
        return []

    def on_watermark(self, shard: DomainShard[Recorder]) -> list[Output]:
        return []


def _keyed_pack_held(entries: list[tuple[int, Any, int, Any]]) -> Any:
    """A chunk as the release before wrote it: the entries' order keys (arrival numbers too) as
    JSON beside the items."""
    packed = pack_items([entry[3] for entry in entries])
    return pickle.dumps(entries) if packed is None else (orjson.dumps([entry[:3] for entry in entries]), *packed)


def _as_written_before_chunks(shard: DomainShard[Recorder], shuffled: bool) -> DomainShard[Recorder]:
    """``shard`` as a release that pickled its held items whole (and before that, without the
    earliest time held) would have written it, restored by this one."""
    state = {k: v for k, v in shard.__dict__.items() if k not in ("_sorted", "_chunks", "_fresh", "_held_min")}
    held = list(shard._held)
    if shuffled:  # an older release appended arrivals and sorted when due
        held.reverse()
    state["_held"], state["_unsorted"] = held, True
    old = DomainShard.__new__(DomainShard)
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    return old


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.tuples(st.just("event"), st.integers(0, 1_000)), st.tuples(st.just("progress"), st.integers(0, 300))),
             max_size=60),
    st.sets(st.integers(0, 60), max_size=6),
    st.sampled_from(["this release", "whole, sorted", "whole, unsorted", "keyed chunks"]),
)
def test_an_ordered_shard_applies_held_items_in_time_order_once_the_watermark_passes_them(
    steps: list[tuple[str, int]], restarts: set[int], written_by: str
) -> None:
    """Through restarts from snapshots in an entity store (each restored by a new store of the
    file, as a restarted process does), and from state an older release wrote."""
    shard = DomainShard(Recorder(), upstreams=1, ordered=True)
    watermark, late, on_time = 0, [], []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "shard.sqlite3"
        store = EntityStore(path)
        for i, (kind, value) in enumerate(steps):
            if i in restarts:
                if written_by.startswith("whole") and i == min(restarts):
                    shard = _as_written_before_chunks(shard, shuffled=written_by == "whole, unsorted")
                with mock.patch.object(shard_module, "_pack_held", _keyed_pack_held) if (
                    written_by == "keyed chunks" and i == min(restarts)
                ) else nullcontext():
                    header = store.snapshot(shard)
                store.close()
                store = EntityStore(path)
                applied = shard.domain.applied
                shard = store.restore(header)
                assert shard.domain.applied == applied
            if kind == "event":
                item = (value, f"e{i:03d}")
                (late if shard.watermark is not None and value < shard.watermark else on_time).append(item)
                shard.on_event(_event(item[1], value))
            else:
                watermark += value  # watermarks only move forward
                shard.on_progress(Progress(0, watermark))
                # Everything held before this watermark is applied by now, nothing at or after it.
                assert all(ts < watermark for ts, _ in shard.domain.applied if (ts, _) in on_time)
                assert shard.pending == sum(1 for ts, _ in on_time if ts >= watermark)
        store.close()
    shard.on_progress(Progress(0, watermark + 2_000))  # the end: all due
    applied = shard.domain.applied
    assert sorted(applied) == sorted(late + on_time)  # each once
    assert [item for item in applied if item in on_time] == sorted(on_time)  # in time order


def test_a_snapshot_pickles_each_held_item_once_and_keeps_what_the_watermark_has_not_passed() -> None:
    shard = DomainShard(Recorder(), upstreams=1, ordered=True)
    shard.on_progress(Progress(0, 0))
    with tempfile.TemporaryDirectory() as folder:
        store = EntityStore(Path(folder) / "shard.sqlite3")
        for i in range(100):
            shard.on_event(_event(f"a{i}", 1_000 + i))
        store.snapshot(shard)
        assert store.last_written == 1  # one chunk of 100 items
        for i in range(10):
            shard.on_event(_event(f"b{i}", 2_000 + i))
        store.snapshot(shard)
        assert store.last_written == 1  # the ten new ones
        store.snapshot(shard)
        assert store.last_written == 0
        shard.on_progress(Progress(0, 1_500))  # the first chunk is all due: it is dropped
        header = store.snapshot(shard)
        assert store.last_written == 1 and len(shard._chunks) == 1
        restored = store.restore(header)
        assert restored.pending == 10 and restored._held == shard._held
        shard = restored
        shard.on_progress(Progress(0, 2_004))  # the second chunk is partly due: kept
        header = store.snapshot(shard)
        assert store.last_written - store.last_copied == 0  # (the store may copy the chunk forward)
        restored = store.restore(header)
    assert restored.pending == 6 and restored._held == shard._held
    restored.on_progress(Progress(0, 3_000))
    applied = restored.domain.applied  # since the start: the domain's state is restored with it
    assert len(applied) == 110 and applied[-6:] == [(2_000 + i, f"b{i}") for i in range(4, 10)]


def test_held_items_restore_in_their_places_from_chunks_of_this_release_and_the_one_before() -> None:
    """A chunk is written without its items' arrival numbers (they follow from the chunk's place);
    chunks the release before wrote with them still restore, and an item and a copy of it (the
    same event re-sent) keep their order across both."""
    shard = DomainShard(Recorder(), upstreams=1, ordered=True)
    shard.on_progress(Progress(0, 0))
    with tempfile.TemporaryDirectory() as folder:
        store = EntityStore(Path(folder) / "shard.sqlite3")
        shard.on_event(_event("a", 20))
        shard.on_event(_event("early", 5))  # applied before the snapshot: not in its chunk
        shard.on_progress(Progress(0, 6))
        shard.on_event(_event("b", 10))
        with mock.patch.object(shard_module, "_pack_held", _keyed_pack_held):
            store.snapshot(shard)  # as the release before: (keys, items)
        assert len(shard._chunks[3][1]) == 3
        shard.on_event(_event("a", 20))  # the copy, after the original
        shard.on_event(_event("c", 15))
        header = store.snapshot(shard)  # this release: items only
        assert len(shard._chunks[5][1]) == 2
        restored = store.restore(header)
    assert [(ts, key) for ts, key, _, _ in restored._held] == [(10, "b"), (15, "c"), (20, "a"), (20, "a")]
    assert restored._held == sorted(shard._held, key=lambda entry: entry[:3])  # arrival numbers too: the copy's place
    restored.on_progress(Progress(0, 100))
    assert restored.domain.applied[-4:] == [(10, "b"), (15, "c"), (20, "a"), (20, "a")]


def test_held_events_and_signals_restore_exactly_whatever_their_bodies() -> None:
    # Events go into a chunk as JSON, other items pickled; an event whose body JSON cannot carry
    # (here an integer beyond 64 bits) makes its chunk pickled whole.
    shard = DomainShard(Recorder(), upstreams=1, ordered=True)
    shard.on_progress(Progress(0, 0))
    held = [
        Event("e1", "sale", "pos", 10, {"total": 1.25, "lines": [{"sku": "A", "qty": 2}], "note": "ü"}),
        Signal("customer_activity", "c1", 10, "e1:activity", {"kind": ("tuple", 1)}),
        Event("e2", "search", "clickstream", 12, {}),
    ]
    with tempfile.TemporaryDirectory() as folder:
        store = EntityStore(Path(folder) / "shard.sqlite3")
        for item in held:
            shard.on_event(item)
        header = store.snapshot(shard)
        assert isinstance(shard._chunks[3][1], tuple)  # the JSON form
        shard.on_event(Event("e3", "search", "clickstream", 11, {"big": 2**70}))
        header = store.snapshot(shard)
        assert isinstance(shard._chunks[4][1], bytes)  # pickled whole
        restored = store.restore(header)
    assert restored._held == sorted(shard._held, key=lambda entry: entry[:3])
    assert [entry[3] for entry in restored._held] == [held[0], held[1], shard._held[3][3], held[2]]
