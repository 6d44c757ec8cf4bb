"""Incremental snapshots (operators.state.store): a restore gives back the state as it was, in
its order, from any generation Bytewax may resume from; a snapshot writes only what changed."""

from __future__ import annotations

import copy
import gc
import pickle
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channelflow.config import load_config, load_promotions
from channelflow.simulator import DEFAULT_LOCATIONS, SimulationSettings, simulate
from flows.local import LocalFlow
from flows.main import domain_specs
from operators.contract.events import event_of
from operators.state.store import PAGE_SIZE, SUPERSEDED, WAL_BYTES, EntityStore, StoreError, _Values
from operators.state.tracked import UNLOADED, MutableTrackedDict, TrackedDict, tracked_dicts
from operators.time.units import DAY_MS


def _state(tracked: TrackedDict[str, Any]) -> list[tuple[str, Any]]:
    return list(tracked.items())


def test_a_snapshot_writes_only_the_entries_that_changed(tmp_path: Path) -> None:
    store = EntityStore(tmp_path / "s.sqlite3")
    profiles: MutableTrackedDict[str, list[int]] = MutableTrackedDict()
    for n in range(1_000):
        profiles[f"c{n}"] = [n]
    store.snapshot({"profiles": profiles})
    assert store.last_written == 1_000

    profiles["c7"].append(1)  # read, then changed in place
    profiles["new"] = []
    del profiles["c9"]
    assert "c8" in profiles  # membership is no change
    header = store.snapshot({"profiles": profiles})
    assert store.last_written == 3

    restored = EntityStore(tmp_path / "s.sqlite3").restore(header)["profiles"]
    assert _state(restored) == _state(profiles)


def test_a_new_store_has_large_pages_and_one_made_with_small_pages_keeps_working(tmp_path: Path) -> None:
    # A restore reads every live segment, each a chain of overflow pages read one at a time.
    assert EntityStore(tmp_path / "new.sqlite3").db.execute("PRAGMA page_size").fetchone() == (PAGE_SIZE,)
    older = sqlite3.connect(tmp_path / "old.sqlite3")
    older.executescript("PRAGMA page_size=4096; PRAGMA journal_mode=WAL; CREATE TABLE meta (name TEXT PRIMARY KEY, "
                        "value INTEGER NOT NULL);")  # fmt: skip
    older.close()
    store = EntityStore(tmp_path / "old.sqlite3")
    profiles: MutableTrackedDict[str, list[int]] = MutableTrackedDict((f"c{n}", [n] * 500) for n in range(50))
    store.snapshot({"profiles": profiles})
    profiles["c3"].append(1)
    header = store.snapshot({"profiles": profiles})
    reopened = EntityStore(tmp_path / "old.sqlite3")
    assert reopened.db.execute("PRAGMA page_size").fetchone() == (4096,)
    assert _state(reopened.restore(header)["profiles"]) == _state(profiles)


def test_the_write_ahead_log_is_cut_back_after_a_large_snapshot(tmp_path: Path) -> None:
    # Else it keeps the size of the largest snapshot (the first, which writes everything) for good.
    store = EntityStore(tmp_path / "s.sqlite3")
    profiles: MutableTrackedDict[str, bytes] = MutableTrackedDict((f"c{n}", bytes(400)) for n in range(3 * WAL_BYTES // 400))
    store.snapshot({"profiles": profiles})
    wal = tmp_path / "s.sqlite3-wal"
    assert wal.stat().st_size > 2 * WAL_BYTES  # one transaction: no checkpoint inside it (nor in its commit)
    store.log.settle()  # the checkpoint it asked for, on the checkpoint thread
    assert store.log.checkpoints == 1
    profiles["c1"] = bytes(1)
    store.snapshot({"profiles": profiles})  # the log starts again, cut back
    assert wal.stat().st_size <= WAL_BYTES


def test_a_snapshot_and_a_restore_leave_no_garbage_for_the_collector(tmp_path: Path) -> None:
    # What they allocate is freed as it goes: garbage only a collection frees (a reference
    # cycle) would keep a snapshot's writes alive until one walked them (slow at scale).
    store = EntityStore(tmp_path / "s.sqlite3")
    profiles: MutableTrackedDict[str, list[int]] = MutableTrackedDict((f"c{n}", [n]) for n in range(100))
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        store.snapshot({"profiles": profiles})
        profiles["c1"].append(1)
        header = store.snapshot({"profiles": profiles})
        assert gc.collect() == 0
        reader = EntityStore(tmp_path / "s.sqlite3")
        restored = reader.restore(header)
        assert gc.collect() == 0
        assert _state(restored["profiles"]) == _state(profiles)
        reader.close()
    finally:
        if enabled:
            gc.enable()


def test_a_restore_keeps_the_dicts_order_even_for_a_key_deleted_and_stored_again(tmp_path: Path) -> None:
    store = EntityStore(tmp_path / "s.sqlite3")
    links: TrackedDict[str, str] = TrackedDict()
    links.update({"a": "1", "b": "2", "c": "3"})
    store.snapshot([links])
    del links["a"]
    links["d"] = "4"
    links["a"] = "5"  # back, now last
    links["b"] = "6"  # updated in place: keeps its position
    store.snapshot([links])
    links.pop("c")
    links["c"] = "7"
    header = store.snapshot([links])

    assert _state(EntityStore(tmp_path / "s.sqlite3").restore(header)[0]) == [
        ("b", "6"), ("d", "4"), ("a", "5"), ("c", "7")]


def test_bytewax_resuming_from_an_older_snapshot_gets_that_snapshots_state(tmp_path: Path) -> None:
    store = EntityStore(tmp_path / "s.sqlite3")
    scores: TrackedDict[str, int] = TrackedDict()
    headers = []
    for n in range(5):
        scores[f"c{n % 3}"] = n
        headers.append(store.snapshot([scores]))
    # A crash before Bytewax committed the last two: it hands back the third header.
    again = EntityStore(tmp_path / "s.sqlite3")
    restored = again.restore(headers[2])[0]
    assert _state(restored) == [("c0", 0), ("c1", 1), ("c2", 2)]
    restored["c0"] = 9  # runs on: its next snapshot is generation 4 again, without the lost rows
    header = again.snapshot([restored])
    assert _state(EntityStore(tmp_path / "s.sqlite3").restore(header)[0]) == [("c0", 9), ("c1", 1), ("c2", 2)]


def test_superseded_entries_are_deleted_after_the_retained_generations_and_older_snapshots_refused(
    tmp_path: Path,
) -> None:
    store = EntityStore(tmp_path / "s.sqlite3", retain=3)
    counts: TrackedDict[str, int] = TrackedDict()
    headers = []
    for n in range(1, 11):  # generations 1 to 10
        counts["k"] = n
        counts[f"gone{n}"] = n
        counts.pop(f"gone{n - 1}", None)
        headers.append(store.snapshot([counts]))
    # Only what a restore at generation 7 (10 - retain) or later reads is left.
    assert store.db.execute("SELECT MIN(gen) FROM segments").fetchone()[0] == 7

    with pytest.raises(StoreError, match="generation 6"):
        EntityStore(tmp_path / "s.sqlite3", retain=3).restore(headers[5])
    restored = EntityStore(tmp_path / "s.sqlite3", retain=3).restore(headers[6])[0]
    assert _state(restored) == [("k", 7), ("gone7", 7)]


def _statements(store: EntityStore) -> list[str]:
    """The SQL statements ``store`` runs from now on, as SQLite traces them."""
    seen: list[str] = []
    store.db.set_trace_callback(seen.append)
    return seen


def test_a_segment_with_nothing_current_is_neither_read_nor_rewritten(tmp_path: Path) -> None:
    """As a shard's held-item chunks are: one large entry added and one dropped at each snapshot.
    Its old segments are passed over without reading them, and no segment row is updated (SQLite
    would rewrite the whole blob to change one column)."""
    store = EntityStore(tmp_path / "s.sqlite3", retain=2)
    chunks: TrackedDict[int, bytes] = TrackedDict()
    headers = []
    for n in range(12):
        chunks[n] = bytes([n]) * 200_000
        chunks.pop(n - 2, None)
        if n == 6:
            seen = _statements(store)
        headers.append(store.snapshot([chunks]))
    assert not [sql for sql in seen if sql.startswith(("SELECT data", "UPDATE segments"))], seen
    assert store.db.execute("SELECT COUNT(*) FROM copies").fetchone()[0] > 0  # the dead segments, kept a while
    assert _state(EntityStore(tmp_path / "s.sqlite3", retain=2).restore(headers[-1])[0]) == [
        (10, bytes([10]) * 200_000), (11, bytes([11]) * 200_000),
    ]  # fmt: skip


def test_a_store_written_before_copies_had_their_table_restores_every_retained_generation(tmp_path: Path) -> None:
    """Earlier releases kept the generation a segment was copied at in its own row (``copied``)."""
    path = tmp_path / "s.sqlite3"
    store = EntityStore(path, retain=4, segment=2)
    counts: TrackedDict[str, int] = TrackedDict()
    taken = []
    for n in range(1, 13):
        counts[f"k{n % 5}"] = n
        counts.pop(f"k{(n + 2) % 5}", None)
        taken.append((store.snapshot([counts]), _state(counts)))
    store.close()
    with sqlite3.connect(path) as db:  # as that release left it
        db.execute("UPDATE segments SET copied = (SELECT gen FROM copies WHERE copies.seg = segments.seg)")
        db.execute("DROP TABLE copies")
        db.execute("DELETE FROM meta WHERE name = 'copies'")
    with sqlite3.connect(path) as db:
        legacy = db.execute("SELECT seg, copied FROM segments WHERE copied IS NOT NULL ORDER BY seg").fetchall()
    assert legacy
    opened = EntityStore(path, retain=4, segment=2)  # moves them to their own table, once
    assert opened.db.execute("SELECT seg, gen FROM copies ORDER BY seg").fetchall() == legacy
    assert opened.db.execute("SELECT COUNT(*) FROM segments WHERE copied IS NOT NULL").fetchone()[0] == 0
    opened.close()
    for n, (header, state) in enumerate(taken[-4:]):  # a restore drops later generations: each on a copy
        copy = tmp_path / f"copy{n}" / path.name
        copy.parent.mkdir()
        shutil.copy(path, copy)
        assert _state(EntityStore(copy, retain=4, segment=2).restore(header)[0]) == state


def test_a_reset_store_forgets_the_segments_it_had_set_aside(tmp_path: Path) -> None:
    """Segment numbers start again after a reset: what was set aside before must not hide new ones."""
    path = tmp_path / "s.sqlite3"
    store = EntityStore(path, retain=4, segment=2)
    counts: TrackedDict[str, int] = TrackedDict()
    for n in range(12):
        counts[f"k{n % 3}"] = n
        store.snapshot([counts])
    assert store.db.execute("SELECT COUNT(*) FROM copies").fetchone()[0] > 0
    store.reset()
    fresh: TrackedDict[str, int] = TrackedDict({"a": 0, "b": 0}.items())
    for n in range(12):  # past the retained generations: what a store collects is its own
        fresh["a" if n % 2 else "b"] = n
        header = store.snapshot([fresh])
    assert _state(EntityStore(path, retain=4, segment=2).restore(header)[0]) == [("a", 11), ("b", 10)]


def test_a_dict_no_longer_in_the_state_has_its_entries_deleted_later(tmp_path: Path) -> None:
    store = EntityStore(tmp_path / "s.sqlite3", retain=2)
    state: dict[str, TrackedDict[str, int]] = {"old": TrackedDict({"a": 1}.items())}
    store.snapshot(state)
    state["old"] = TrackedDict({"b": 2}.items())  # replaced
    for _ in range(4):
        store.snapshot(state)
    assert store.db.execute("SELECT SUM(size) FROM segments").fetchone()[0] == 1


def test_a_snapshot_that_failed_loses_no_change(tmp_path: Path) -> None:
    store = EntityStore(tmp_path / "s.sqlite3")
    links: TrackedDict[str, Any] = TrackedDict({"a": "1", "b": "2"}.items())
    store.snapshot([links])
    links["a"] = "3"
    del links["b"]
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
        store.snapshot([links, lambda: None])  # not picklable: after the dict's changes were taken
    header = store.snapshot([links])
    assert _state(EntityStore(tmp_path / "s.sqlite3").restore(header)[0]) == [("a", "3")]


def test_a_dict_of_another_store_is_pickled_whole_not_taken_over(tmp_path: Path) -> None:
    shared: TrackedDict[str, int] = TrackedDict({"a": 1}.items())
    EntityStore(tmp_path / "one.sqlite3").snapshot([shared])
    header = EntityStore(tmp_path / "two.sqlite3").snapshot([shared])
    assert shared.store_id is not None and shared.store_id[0].endswith("one.sqlite3")
    assert _state(EntityStore(tmp_path / "two.sqlite3").restore(header)[0]) == [("a", 1)]


def test_a_restored_mutable_dict_unpickles_a_value_when_it_is_first_read(tmp_path: Path) -> None:
    store = EntityStore(tmp_path / "s.sqlite3")
    profiles: MutableTrackedDict[str, list[int]] = MutableTrackedDict()
    profiles.update({"a": [1], "b": [2], "c": [3], "d": [4]})
    header = store.snapshot([profiles])

    again = EntityStore(tmp_path / "s.sqlite3")
    restored = again.restore(header)[0]
    assert len(restored) == 4 and list(restored) == ["a", "b", "c", "d"] and "b" in restored
    assert dict.__getitem__(restored, "b") is UNLOADED  # keys first, values on demand
    restored["b"].append(20)  # read: unpickled, and counts as changed
    restored.touch("c")  # changed without being read: stored from its pickled bytes
    assert restored.pop("d") == [4]
    assert dict.__getitem__(restored, "a") is UNLOADED
    header = again.snapshot([restored])
    assert again.last_written == 3
    assert _state(restored) == [("a", [1]), ("b", [2, 20]), ("c", [3])]  # items() unpickles the rest
    assert _state(EntityStore(tmp_path / "s.sqlite3").restore(header)[0]) == _state(restored)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 199), st.booleans()), min_size=1, max_size=400), st.integers(1, 40))
def test_what_a_restore_reads_stays_near_what_is_current(
    tmp_path_factory: Any, changes: list[tuple[int, bool]], every: int
) -> None:
    """Superseded entries are copied past, a little at each snapshot: what a restore reads (the
    segments not copied) stays near 1 / (1 - SUPERSEDED) times the current entries (4/3) however
    they were changed, give or take what one snapshot writes and a segment."""
    path = tmp_path_factory.mktemp("store") / "s.sqlite3"
    store = EntityStore(path, retain=2, segment=8)
    counts: TrackedDict[int, int] = TrackedDict({n: 0 for n in range(200)}.items())
    header = store.snapshot([counts])
    for n, (key, delete) in enumerate(changes, 1):
        if delete:
            counts.pop(key, None)
        else:
            counts[key] = n
        if n % every == 0:
            header = store.snapshot([counts])
            read = store.db.execute("SELECT SUM(size) FROM segments WHERE seg NOT IN (SELECT seg FROM copies)").fetchone()[0]
            assert read <= len(counts) / (1 - SUPERSEDED) + 2 * (every + 8)
    header = store.snapshot([counts])
    assert _state(EntityStore(path, retain=2, segment=8).restore(header)[0]) == _state(counts)


# -- any sequence of changes, snapshots and restores ---------------------------------------

_KEYS = st.sampled_from([f"k{n}" for n in range(6)])
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), _KEYS, st.integers(0, 9)),
        st.tuples(st.just("del"), _KEYS, st.just(0)),
        st.tuples(st.just("append"), _KEYS, st.integers(0, 9)),  # a mutable value changed in place
        st.tuples(st.just("setdefault"), _KEYS, st.integers(0, 9)),
        st.tuples(st.just("touch"), _KEYS, st.just(0)),  # changed without being read
        st.tuples(st.just("get"), _KEYS, st.just(0)),
        st.tuples(st.just("snapshot"), st.just(""), st.just(0)),
        st.tuples(st.just("restore"), st.just(""), st.integers(0, 3)),  # from this many snapshots back
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(_OPS)
def test_any_history_restores_to_the_state_of_the_snapshot_resumed_from(tmp_path_factory: Any, ops: list[Any]) -> None:
    """Values a restore left in the store are read only when reached (the state is compared with
    a plain dict's, not read whole at each step), after copying forward and deletions."""
    path = tmp_path_factory.mktemp("store") / "s.sqlite3"
    store = EntityStore(path, retain=4, segment=2)  # small segments: a snapshot writes several
    live: MutableTrackedDict[str, list[int]] = MutableTrackedDict()
    model: dict[str, list[int]] = {}  # what ``live`` holds, in its order
    taken: list[tuple[bytes, dict[str, list[int]]]] = []  # header, the state it was taken of
    for op, key, value in ops:
        if op == "set":
            live[key] = model[key] = [value]
        elif op == "del":
            assert live.pop(key, None) == model.pop(key, None)
        elif op == "append" and key in live:
            live[key].append(value)
            model[key].append(value)
        elif op == "setdefault":
            live.setdefault(key, []).append(value)
            model.setdefault(key, []).append(value)
        elif op == "touch" and key in live:
            live.touch(key)
        elif op == "get":
            assert live.get(key) == model.get(key)
        elif op == "snapshot":
            taken.append((store.snapshot({"live": live}), copy.deepcopy(model)))
        elif op == "restore" and taken:
            at = max(0, len(taken) - 1 - value)
            header, expected = taken[at]
            store = EntityStore(path, retain=4, segment=2)
            live = store.restore(header)["live"]
            model = copy.deepcopy(expected)
            assert list(live) == list(model)
            del taken[at + 1 :]  # the snapshots after it were never committed: gone
    assert _state(live) == list(model.items())


#: What ``_restarted_and_rewritten`` leaves: every fourth key as it was, the others doubled.
_REWRITTEN = [(f"c{n}", [n] if n % 4 == 3 else [n, n]) for n in range(40)]


def _restarted_and_rewritten(path: Path, retain: int) -> tuple[EntityStore, MutableTrackedDict[str, list[int]]]:
    """40 profiles stored, restored in a new store (values left in it, segments of 4), then three of
    every four replaced without being read: the fourth's entries are copied forward by the next
    snapshots."""
    store = EntityStore(path, retain=retain, segment=4)
    header = store.snapshot([MutableTrackedDict((f"c{n}", [n]) for n in range(40))])
    restarted = EntityStore(path, retain=retain, segment=4)
    restored = restarted.restore(header)[0]
    for n in range(40):
        if n % 4 != 3:
            restored[f"c{n}"] = [n, n]
    return restarted, restored


def test_values_left_in_the_store_are_read_where_copying_forward_moved_them(tmp_path: Path) -> None:
    restarted, restored = _restarted_and_rewritten(tmp_path / "s.sqlite3", retain=2)
    for _ in range(12):  # a segment copied forward at each (what they write is less)
        restarted.snapshot([restored])
    first = restarted.db.execute("SELECT MIN(seg) FROM segments").fetchone()[0]
    assert first > 4, "the oldest segments the restore left values in are deleted"
    assert dict.__getitem__(restored, "c3") is UNLOADED  # never read since the restore; was in segment 1
    assert restored["c3"] == [3] and restored.get("c7") == [7] and restored.pop("c39") == [39]
    restored["c39"] = [39]
    assert _state(restored) == _REWRITTEN


def test_a_snapshot_that_failed_after_copying_forward_leaves_values_where_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.sqlite3"
    restarted, restored = _restarted_and_rewritten(path, retain=1)
    restarted.snapshot([restored])

    def fail(old: int) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with monkeypatch.context() as patch:
        patch.setattr(restarted, "_collect", fail)  # inside the transaction, after copying and appending
        with pytest.raises(sqlite3.OperationalError):
            restarted.snapshot([restored])
    for _ in range(12):
        header = restarted.snapshot([restored])
    assert _state(EntityStore(path).restore(header)[0]) == _REWRITTEN
    assert _state(restored) == _REWRITTEN


@given(st.lists(st.binary(max_size=40), max_size=30))
def test_values_stored_apart_read_back_one_by_one_or_all(values: list[bytes]) -> None:
    keys = [f"k{n}" for n in range(len(values))]
    for blob in (_Values.pack(values), pickle.dumps(values)):  # and as this layout's first version wrote them
        assert [_Values(keys, blob).of(key) for key in keys] == values
        assert _Values(keys, blob).all() == values


def test_a_store_written_before_values_were_kept_apart_restores_and_keeps_working(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = EntityStore(path)
    header = store.snapshot([MutableTrackedDict({"a": [1], "b": [2]}.items())])
    store.close()
    with sqlite3.connect(path) as db:  # as that release left it: values inside ``data``, no ``vals``
        for seg, data, vals in db.execute("SELECT seg, data, vals FROM segments").fetchall():
            keys, seqs, _, deleted = pickle.loads(data)
            inline = pickle.dumps((keys, seqs, _Values(keys, vals).all(), deleted))
            db.execute("UPDATE segments SET data = ? WHERE seg = ?", (inline, seg))
        db.execute("ALTER TABLE segments DROP COLUMN vals")
        db.execute("DELETE FROM meta WHERE name = 'vals'")

    store = EntityStore(path)
    restored = store.restore(header)[0]
    assert restored["b"] == [2]
    restored["b"].append(3)
    header = store.snapshot([restored])
    assert _state(EntityStore(path).restore(header)[0]) == [("a", [1]), ("b", [2, 3])]


# -- the flow's real domains --------------------------------------------------------------


@pytest.mark.slow
def test_every_stage_restored_at_every_step_writes_what_an_uninterrupted_run_writes(tmp_path: Path) -> None:
    """Every shard of every stage is snapshotted and replaced by its restored copy after each
    half day: a change a stage made without it counting as a change would be lost, and its
    outputs (in order) or its entries would differ from a run that was never restored."""
    # A short churn horizon and tick, so snapshots mature and the model learns within the log;
    # kept every other tick, so a maturing entry is changed in place where no tick reads it.
    config = load_config(environ={"CHANNELFLOW_CHURN__HORIZON": "3d", "CHANNELFLOW_CHURN__TICK": "1d",
                                  "CHANNELFLOW_CHURN__WINDOW": "6d", "CHANNELFLOW_CHURN__WARMUP": "20",
                                  "CHANNELFLOW_CHURN__LEARN_EVERY": "2"})
    rules = load_promotions()
    log = sorted((event_of(body) for body in simulate(
        SimulationSettings(seed=5, customers=150, days=16, anomalies=True), DEFAULT_LOCATIONS)),
        key=lambda e: (e.ts, e.event_id))  # fmt: skip
    start = log[0].ts
    steps = [[e for e in log if start + n * DAY_MS // 2 <= e.ts < start + (n + 1) * DAY_MS // 2] for n in range(32)]

    def run(restart: bool) -> tuple[list[Any], list[Any]]:
        flow = LocalFlow(domain_specs(config, rules), config.flow.shards)
        last = 0
        for events in steps:
            flow.run(events, lateness_ms=0)
            if restart:
                headers = flow.snapshot(tmp_path / "stores")
                last = sum(store.last_written for store in flow.stores.values())
                flow.restore(tmp_path / "stores", headers)
        # Every entry as the run left it: a change made in place but not counted as one is lost
        # at the next restore even when no output shows it (a counter, a list a later tick reads).
        # (Not the chunks of held items a shard keeps for its snapshots: a run without any has none.)
        entries = [(stage, n, list(tracked.items()))
                   for stage, shards in flow.shards.items() for n, shard in enumerate(shards)
                   for tracked in tracked_dicts(shard) if tracked is not shard._chunks]  # fmt: skip
        if restart:
            # Incremental: the last half day's snapshot wrote a fraction of the state (all of it
            # is what a snapshot into empty stores writes).
            flow.stores = {}
            flow.shards = {stage: [pickle.loads(pickle.dumps(shard)) for shard in shards]  # stored nowhere yet
                           for stage, shards in flow.shards.items()}  # fmt: skip
            flow.snapshot(tmp_path / "whole")
            assert last < sum(store.last_written for store in flow.stores.values()) / 4
        return [(o.topic, o.key, o.value) for o in flow.outputs], entries

    expected, expected_entries = run(restart=False)
    assert {topic for topic, _, _ in expected} >= {"inventory_updates", "customer_scores", "promotions"}
    outputs, entries = run(restart=True)
    assert outputs == expected
    assert len(entries) == len(expected_entries) > 50
    for got, want in zip(entries, expected_entries, strict=True):
        assert got == want, f"{got[0]}[{got[1]}]: a tracked dict's entries differ after restores"
