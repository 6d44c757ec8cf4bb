"""Incremental snapshots: a shard's state as a small pickled header plus stored entries.

A recovery snapshot of a shard pickles its whole object graph but for each
:class:`~operators.state.tracked.TrackedDict` in it, which the header names by
id. The entries of those dicts live in an :class:`EntityStore` (one SQLite file
per shard), written at each snapshot only for the keys that changed since the
previous one. Each snapshot is a *generation*, and the header records it.

The store is a log: what changed in a dict at a snapshot is one *segment* (a
blob of at most :data:`SEGMENT` entries, appended: no per-entry index to
update), and a key's latest entry is the one in the newest segment that has
it. A snapshot also copies forward the still-current entries of the dict's
oldest segments while superseded ones make up more than :data:`SUPERSEDED` (a
quarter) of what is stored, a little at a time (reading about twice what the
snapshot wrote, or a segment, over all the shard's dicts), so no snapshot pays
for rewriting a dict and a restore reads about 4/3 of what is current. Every
entry keeps its *position* (the order its key was inserted in), so a restored
dict iterates as the original did.

Bytewax stores the header (``EntityStore.snapshot`` returns its bytes) and,
after a crash, hands back the header of the last snapshot it committed, which
may be a generation or two older than the last one written here. A restore
therefore drops segments of later generations and takes back the copying
done since. Copied segments are deleted only ``retain`` generations later, so
every header Bytewax may still hand back finds its entries; an older one is
refused (:class:`StoreError`), never read wrongly.

A restore reads the segments in bulk, and the values of a
:class:`~operators.state.tracked.MutableTrackedDict` stay in the store until
first read (see :mod:`operators.state.tracked`): a segment keeps them apart
from its keys (the ``vals`` column, after ``data``: the values' ends, then the
values end to end), so a restore reads the keys only; the first read of a value
reads its segment's, kept until they are all read. A restarted
shard is ready once it knows its keys, not once it has read and rebuilt every
customer.

>>> import tempfile, pathlib
>>> from operators.state.tracked import MutableTrackedDict
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> store = EntityStore(folder / "shard-0.sqlite3")
>>> state = {"name": "shard 0", "profiles": MutableTrackedDict()}
>>> state["profiles"]["c1"] = [1]
>>> first = store.snapshot(state)
>>> state["profiles"]["c1"].append(2)
>>> second = store.snapshot(state)
>>> store.last_written  # entries the last snapshot wrote
1
>>> restored = EntityStore(folder / "shard-0.sqlite3").restore(first)
>>> restored["profiles"]
MutableTrackedDict({'c1': [1]})
"""

from __future__ import annotations

import io
import pickle
import sqlite3
import struct
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

from operators.state.pickling import collector_paused
from operators.state.tracked import UNLOADED, TrackedDict
from operators.state.wal import Checkpointed

#: Generations a superseded entry is kept for (Bytewax may resume from a snapshot this much older).
RETAIN = 8
#: Entries per segment at most: what copying one forward reads at once.
SEGMENT = 1_024
#: The share of superseded entries in what a dict stores above which old segments are copied forward.
SUPERSEDED = 0.25
#: SQLite's page size for a new store (the largest it has).
PAGE_SIZE = 65_536
#: The write-ahead log's size past which it is checkpointed, and which it is cut back to.
WAL_BYTES = 4 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    seg INTEGER PRIMARY KEY, map INTEGER NOT NULL, gen INTEGER NOT NULL, size INTEGER NOT NULL,
    copied INTEGER, data BLOB NOT NULL, vals BLOB
);
CREATE INDEX IF NOT EXISTS segments_by_map ON segments (map, copied);
CREATE TABLE IF NOT EXISTS copies (seg INTEGER PRIMARY KEY, gen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dropped (map INTEGER PRIMARY KEY, gen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_PROTOCOL = pickle.HIGHEST_PROTOCOL
#: Where an entry is: its segment's number above these bits, its key's position below them.
_SEQ_BITS = 40
_SEQ_MASK = (1 << _SEQ_BITS) - 1


class StoreError(RuntimeError):
    """A snapshot's entries are no longer in its store (or the store is not the snapshot's)."""


@dataclass(frozen=True, slots=True)
class Header:
    """What Bytewax stores for a shard: its store's name, the generation, the pickled graph."""

    store: str
    gen: int
    graph: bytes


def header_store(header_bytes: bytes) -> str:
    """The file name of the store a snapshot header's entries are in."""
    header = pickle.loads(header_bytes)
    if not isinstance(header, Header):
        raise StoreError(f"not a snapshot header: {type(header).__name__}")
    return header.store


@dataclass(slots=True)
class _Segments:
    """What the store knows of one dict: where each current key's entry is, its live segments.

    A segment's deletions are read by a restore only while the entries they delete are in live
    segments (older ones); they are not entries, and are not counted as superseded: a dict whose
    keys come and go (held items' chunks, timers) would otherwise look a quarter superseded at
    every snapshot and have its current entries copied forward each time.
    """

    where: dict[Any, int] = field(default_factory=dict)  # key -> segment << _SEQ_BITS | position
    live: deque[tuple[int, int]] = field(default_factory=deque)  # (segment, entries), oldest first
    stored: int = 0  # entries in the live segments
    current: dict[int, int] = field(default_factory=dict)  # live segment -> its current entries
    counted: bool = True  # whether ``current`` counts them (a restore leaves that to the first need)
    deleters: dict[int, list[int]] = field(default_factory=dict)  # live segment -> segments deleting its entries
    needed: dict[int, int] = field(default_factory=dict)  # live segment -> its deletions a restore needs
    maybe_dead: bool = False  # a segment may have nothing a restore needs (see _drop_dead)

    def supersede(self, at: int) -> None:
        """The entry at ``at`` (a value of ``where``) is current no more."""
        if not self.counted:
            return
        seg = at >> _SEQ_BITS
        left = self.current.get(seg)
        if left is not None:  # else its segment is being copied forward: counted no more
            self.current[seg] = left - 1
            self.maybe_dead = self.maybe_dead or left == 1

    def count(self) -> None:
        """Count each live segment's current entries, if not counted yet."""
        if self.counted:
            return
        current = self.current = dict.fromkeys(self.current, 0)
        for at in self.where.values():
            current[at >> _SEQ_BITS] += 1
        self.counted = True

    def deletes(self, holder: int, seg: int) -> None:
        """Segment ``holder`` deletes an entry of segment ``seg``: needed while ``seg`` is live."""
        if seg in self.current:
            self.deleters.setdefault(seg, []).append(holder)
            self.needed[holder] = self.needed.get(holder, 0) + 1

    def drop(self, seg: int) -> int:
        """Segment ``seg`` is read no more: the current entries it had (to copy forward)."""
        for holder in self.deleters.pop(seg, ()):
            left = self.needed[holder] - 1
            self.needed[holder] = left
            self.maybe_dead = self.maybe_dead or left == 0
        self.needed.pop(seg, None)
        return self.current.pop(seg, 0)

    def dead(self, seg: int) -> bool:
        """Whether a restore would read segment ``seg`` for nothing: no current entry, no deletion it needs."""
        return self.current.get(seg) == 0 and not self.needed.get(seg)

    def superseded(self) -> int:
        return self.stored - len(self.where)

    def to_copy(self) -> bool:
        """Whether superseded entries are over :data:`SUPERSEDED` of what is stored."""
        return self.superseded() > SUPERSEDED * self.stored

    def superseded_share(self) -> float:
        return self.superseded() / self.stored if self.stored else 0.0


@dataclass(slots=True)
class _Write:
    """One dict's entries to append at a snapshot (keys, where they will be, values; keys deleted)."""

    keys: list[Any] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    deleted: list[Any] = field(default_factory=list)
    deleted_from: list[int] = field(default_factory=list)  # the segment of each deleted key's entry
    whole: bool = False  # every entry: what the store held of the dict before is superseded
    apart: bool = False  # values pickled one by one (a MutableTrackedDict's): stored apart from the keys


class EntityStore:
    """One shard's entries, as a log of segments in a SQLite file (see the module docstring)."""

    def __init__(self, path: Path, *, retain: int = RETAIN, segment: int = SEGMENT) -> None:
        self.path = path
        self.owner = str(path.resolve())  # what a tracked dict it holds is marked with
        self.retain = retain
        self.segment = segment
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # WAL with NORMAL sync: a killed process loses nothing committed; only power loss can lose
        # the last commits, which Bytewax then replays from an older snapshot and offset. Pages of
        # 64 KiB (set before the file's first table; a store made earlier keeps its own): a
        # segment's blob is a chain of overflow pages, each read on its own, and a restore reads
        # every live segment. The log is checkpointed past WAL_BYTES, as with SQLite's default of
        # 1,000 small pages, but on a thread of its own (operators.state.wal: not inside a
        # snapshot's commit, which the whole flow waits for), and cut back to that after (else it
        # keeps the size of the largest snapshot, the first: as large as the store).
        self.db.executescript(f"PRAGMA page_size={PAGE_SIZE}; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                              + _SCHEMA)  # fmt: skip
        self.db.executescript(f"PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit={WAL_BYTES};")
        self.log = Checkpointed(path, WAL_BYTES)
        meta = dict(self.db.execute("SELECT name, value FROM meta"))
        if not meta.get("copies"):
            # A segment read no more as of a generation is a row of ``copies``, not a column of its
            # own row: SQLite rewrites a whole row to change one column, and a segment can be a
            # large blob. A store written before kept that generation in ``segments.copied``: it
            # is moved, once (the scan reads every row; the flag spares later opens).
            self.db.executescript("BEGIN; INSERT OR IGNORE INTO copies SELECT seg, copied FROM segments "
                                  "WHERE copied IS NOT NULL; UPDATE segments SET copied = NULL "
                                  "WHERE copied IS NOT NULL; INSERT OR REPLACE INTO meta VALUES ('copies', 1); "
                                  "COMMIT;")  # fmt: skip
        self.gen: int = meta.get("gen", 0)
        self.safe_from: int = meta.get("safe_from", 0)
        self.next_map: int = meta.get("next_map", 1)
        self.next_seg: int = meta.get("next_seg", 1)
        if not meta.get("vals"):
            if "vals" not in {row[1] for row in self.db.execute("PRAGMA table_info(segments)")}:
                # A store written before kept every value in ``data``; its segments read as they are.
                self.db.execute("ALTER TABLE segments ADD COLUMN vals BLOB")
            self._set_meta(vals=1)
        self.maps: dict[int, _Segments] = {}  # the dicts this store has written or read
        # Restored dicts that may have values left in this store, by map id (weak: the dict holds
        # the store, for reading them; not the other way round).
        self._lazy_dicts: dict[int, weakref.ref[TrackedDict[Any, Any]]] = {}
        self._restored_keys: dict[int, list[Any]] = {}  # a segment a restore left values in -> its keys
        self._read: dict[int, _Values] = {}  # segments whose values restored dicts have begun to read
        self._moved: list[tuple[TrackedDict[Any, Any], list[Any], int]] = []  # told once committed
        self.referenced: set[int] = set()  # the maps the last snapshot (or restore) referenced
        self.last_written = 0  # entries the last snapshot wrote (copied ones too)
        self.last_copied = 0  # of them, current entries copied forward from old segments

    def close(self) -> None:
        self.log.close()
        self.db.close()

    def reset(self) -> None:
        """Forget everything: for a shard that starts afresh (no snapshot of it was committed)."""
        self._read_left()
        self.db.executescript("BEGIN; DELETE FROM segments; DELETE FROM copies; DELETE FROM dropped; DELETE FROM meta; "
                              "INSERT INTO meta VALUES ('copies', 1); COMMIT;")  # fmt: skip
        self.gen, self.safe_from, self.next_map, self.next_seg = 0, 0, 1, 1
        self.maps, self.referenced, self._restored_keys, self._read = {}, set(), {}, {}

    # -- snapshot ----------------------------------------------------------------------

    def snapshot(self, state: object) -> bytes:
        """Store what changed in ``state``'s tracked dicts as a new generation; the header bytes."""
        # What a snapshot allocates is short-lived (pickles, rows, copies of old segments' values):
        # collections during it would walk it for nothing.
        with collector_paused():
            return self._snapshot(state)

    def _snapshot(self, state: object) -> bytes:
        gen = self.gen + 1
        writes: dict[int, _Write] = {}
        db = self.db
        self._moved = []
        written = copied = 0
        try:
            buffer = io.BytesIO()
            _GraphPickler(buffer, self, writes).dump(state)
            header = pickle.dumps(Header(self.path.name, gen, buffer.getvalue()), protocol=_PROTOCOL)
            db.execute("BEGIN")
            for map_id, write in writes.items():
                if write.whole:  # what was stored of it before is read no more
                    db.execute("INSERT OR IGNORE INTO copies SELECT seg, ? FROM segments WHERE map = ?", (gen, map_id))
            # Copying forward reads at most twice what this snapshot wrote of its own (or a
            # segment), over all the shard's dicts, the most superseded first: a snapshot costs
            # about what it writes even when every dict needs copying at once.
            for map_id in writes:
                self._drop_dead(map_id, gen)
            budget = max(2 * sum(len(write.keys) + len(write.deleted) for write in writes.values()), self.segment)
            for map_id in sorted(writes, key=lambda m: self.maps[m].superseded_share(), reverse=True):
                if budget <= 0 or not self.maps[map_id].to_copy():
                    break  # the rest are less superseded still
                read, n = self._copy_forward(map_id, writes[map_id], gen, budget=budget)
                budget -= read
                copied += n
            for map_id, write in writes.items():
                written += self._append(map_id, write, gen)
            referenced = set(writes)
            db.executemany("INSERT OR REPLACE INTO dropped VALUES (?, ?)",
                           [(m, gen) for m in self.referenced - referenced])  # fmt: skip
            self._read_left(self.referenced - referenced)  # their entries are deleted in time
            db.executemany("DELETE FROM dropped WHERE map = ?", [(m,) for m in referenced - self.referenced])
            self._collect(gen - self.retain)
            self._set_meta(gen=gen, next_map=self.next_map, next_seg=self.next_seg, safe_from=self.safe_from)
            db.execute("COMMIT")
            self.log.after_commit()
            for tracked, keys, seg in self._moved:
                tracked.moved(keys, seg)  # entries copied forward: their old segments go in time
            self._moved = []
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            # The dicts' changes were taken and what it knew of them may be half updated: each is
            # written whole at the next snapshot.
            self.maps = {}
            raise
        self.gen, self.referenced, self.last_written, self.last_copied = gen, referenced, written, copied
        return header

    def _changes(self, tracked: TrackedDict[Any, Any], map_id: int) -> _Write:
        """What changed in ``tracked`` since it was last stored: a key inserted since takes the next
        position (so a restore iterates in the dict's order); another keeps its own."""
        changed, added = tracked.take_changes()
        segments = self.maps.get(map_id)
        write = _Write()
        keys, seqs, values = write.keys, write.seqs, write.values
        write.apart = tracked.mutable
        if changed is None or segments is None:  # never stored here (or not known to be): afresh
            self.maps[map_id] = _Segments()
            write.whole = True
            keys.extend(dict.keys(tracked))
            seqs.extend(range(len(keys)))
            values.extend(tracked.stored_values(keys))
            tracked.next_seq = len(keys)
            return write
        assert added is not None
        where = segments.where
        seq = tracked.next_seq
        for key in added:
            keys.append(key)
            seqs.append(seq)
            seq += 1
        tracked.next_seq = seq
        for key in changed:
            if key in added:
                continue
            if key in tracked:
                keys.append(key)
                seqs.append(where[key] & _SEQ_MASK)
            elif key in where:  # deleted (not one inserted and deleted since the last snapshot)
                at = where.pop(key)
                write.deleted.append(key)
                write.deleted_from.append(at >> _SEQ_BITS)
                segments.supersede(at)
        values.extend(tracked.stored_values(keys))
        return write

    def _copy_forward(self, map_id: int, write: _Write, gen: int, *, budget: int) -> tuple[int, int]:
        """While superseded entries are over :data:`SUPERSEDED` of what the dict stores, copy the
        current entries of its oldest segments into ``write`` (reading whole segments until
        ``budget`` entries are read); those segments are read no more as of ``gen``. The entries
        read, and copied."""
        segments = self.maps[map_id]
        segments.count()
        where, live = segments.where, segments.live
        in_write = set(write.keys)  # written anew already: its entry in an old segment is stale
        copied = read = 0
        while live and segments.to_copy() and read < budget:
            seg, entries = live.popleft()
            segments.stored -= entries
            self.db.execute("INSERT INTO copies VALUES (?, ?)", (seg, gen))
            if not segments.drop(seg):
                continue  # nothing in it is current: not read at all
            read += entries
            keys, seqs, values = self._entries(seg)
            self._forget(seg)  # its values left in the store are read where they are copied to
            top = seg << _SEQ_BITS
            for key, seq, value in zip(keys, seqs, values, strict=True):
                if where.get(key) == top | seq and key not in in_write:
                    write.keys.append(key)
                    write.seqs.append(seq)
                    write.values.append(value)
                    copied += 1
        return read, copied

    def _drop_dead(self, map_id: int, gen: int) -> None:
        """Segments a restore would read for nothing are read no more as of ``gen``, wherever they
        are in the log (oldest first: one dropped may free the deletions of a later one)."""
        segments = self.maps[map_id]
        if not segments.maybe_dead:
            return
        segments.maybe_dead = False
        segments.count()
        kept: deque[tuple[int, int]] = deque()
        dropped = []
        for seg, entries in segments.live:
            if segments.dead(seg):
                segments.drop(seg)
                segments.stored -= entries
                dropped.append((seg, gen))
                self._forget(seg)
            else:
                kept.append((seg, entries))
        segments.live = kept
        self.db.executemany("INSERT INTO copies VALUES (?, ?)", dropped)

    def _append(self, map_id: int, write: _Write, gen: int) -> int:
        """Append ``write`` as segments of generation ``gen``; the entries written."""
        segments = self.maps[map_id]
        where = segments.where
        total = len(write.keys)
        if total == 0 and not write.deleted:
            return 0
        rows: list[tuple[int, int, int, int, bytes, bytes | None]] = []
        step = self.segment
        for start in range(0, max(total, 1), step):
            seg = self.next_seg
            self.next_seg += 1
            keys, seqs = write.keys[start : start + step], write.seqs[start : start + step]
            deleted = write.deleted if start == 0 else []
            top = seg << _SEQ_BITS
            for key in keys:
                at = where.get(key)
                if at is not None:
                    segments.supersede(at)
            where.update(zip(keys, [top | seq for seq in seqs], strict=True))
            segments.current[seg] = len(keys)
            if start == 0:
                for target in write.deleted_from:
                    segments.deletes(seg, target)
            values = write.values[start : start + step]
            if write.apart:
                data = pickle.dumps((keys, seqs, None, deleted), protocol=_PROTOCOL)
                rows.append((seg, map_id, gen, len(keys) + len(deleted), data, _Values.pack(values)))
                if (tracked := self._lazy_dict(map_id)) is not None:
                    self._moved.append((tracked, keys, seg))
            else:
                data = pickle.dumps((keys, seqs, values, deleted), protocol=_PROTOCOL)
                rows.append((seg, map_id, gen, len(keys) + len(deleted), data, None))
            segments.live.append((seg, len(keys)))
            segments.stored += len(keys)
        self.db.executemany("INSERT INTO segments (seg, map, gen, size, data, vals) VALUES (?, ?, ?, ?, ?, ?)", rows)
        return total + len(write.deleted)

    def _row(self, seg: int, columns: str) -> tuple[Any, ...]:
        row: tuple[Any, ...] | None = self.db.execute(f"SELECT {columns} FROM segments WHERE seg = ?", (seg,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: segment {seg} is no longer in the store")
        return row

    def _entries(self, seg: int) -> tuple[list[Any], list[int], list[Any]]:
        """Segment ``seg``'s keys, their positions and their values (pickled, for a mutable dict's)."""
        data, vals = self._row(seg, "data, vals")
        keys, seqs, values, _ = pickle.loads(data)
        return keys, seqs, values if vals is None else _Values(keys, vals).all()

    # -- the values a restore left in the store (a restored dict's Source) -----------------

    def read(self, seg: int, key: Any) -> bytes:
        """The pickled value of ``key`` in segment ``seg`` (whose values are read once, and kept
        until they are all read)."""
        values = self._read.get(seg)
        if values is None:
            values = self._read[seg] = self._values_of(seg)
        return values.of(key)

    def read_all(self, seg: int) -> Iterator[tuple[Any, bytes]]:
        """Every key of segment ``seg`` with its pickled value; the segment's values are not kept."""
        values = self._read.pop(seg, None) or self._values_of(seg)
        return zip(values.keys, values.all(), strict=True)

    def _values_of(self, seg: int) -> _Values:
        keys = self._restored_keys.pop(seg, None)
        if keys is not None:  # the keys the restore read: only the values are read now
            return _Values(keys, self._row(seg, "vals")[0])
        vals, data = self._row(seg, "vals, data")  # copied forward since the restore: its keys too
        return _Values(pickle.loads(data)[0], vals)

    def _forget(self, seg: int) -> None:
        """Segment ``seg`` is read no more (copied forward or dropped): what was kept of it goes."""
        self._restored_keys.pop(seg, None)
        self._read.pop(seg, None)

    def _lazy_dict(self, map_id: int) -> TrackedDict[Any, Any] | None:
        ref = self._lazy_dicts.get(map_id)
        return None if ref is None else ref()

    def _read_left(self, map_ids: Iterable[int] | None = None) -> None:
        """Read every value the restored dicts ``map_ids`` (all: None) left in the store, which is
        about to delete their segments."""
        for map_id in list(self._lazy_dicts) if map_ids is None else map_ids:
            tracked = self._lazy_dict(map_id)
            self._lazy_dicts.pop(map_id, None)
            if tracked is not None:
                tracked.load_all()

    def _collect(self, old: int) -> None:
        """Delete what no restore at generation ``old`` or later reads: segments copied forward by
        then, and the segments of dicts no longer in the state by then."""
        if old <= self.safe_from:
            return
        db = self.db
        db.execute("DELETE FROM segments WHERE seg IN (SELECT seg FROM copies WHERE gen <= ?)", (old,))
        db.execute("DELETE FROM copies WHERE gen <= ?", (old,))
        for (map_id,) in db.execute("SELECT map FROM dropped WHERE gen <= ?", (old,)).fetchall():
            db.execute("DELETE FROM copies WHERE seg IN (SELECT seg FROM segments WHERE map = ?)", (map_id,))
            db.execute("DELETE FROM segments WHERE map = ?", (map_id,))
            self.maps.pop(map_id, None)  # should it come back, it is written whole
        db.execute("DELETE FROM dropped WHERE gen <= ?", (old,))
        self.safe_from = old

    def _set_meta(self, **values: int) -> None:
        self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(values.items()))

    # -- restore -----------------------------------------------------------------------

    def restore(self, header_bytes: bytes) -> Any:
        """The state a header names, with its tracked dicts read from this store; later
        generations (written after the snapshot Bytewax resumed from) are dropped."""
        header = pickle.loads(header_bytes)
        if not isinstance(header, Header) or header.store != self.path.name:
            raise StoreError(f"{self.path}: the snapshot is not of this store ({getattr(header, 'store', header)!r})")
        gen = header.gen
        if gen < self.safe_from or gen > self.gen:
            raise StoreError(
                f"{self.path}: the snapshot is of generation {gen}, but this store holds generations "
                f"{self.safe_from} to {self.gen} (was the recovery directory copied in parts?)"
            )
        db = self.db
        db.execute("BEGIN")
        db.execute("DELETE FROM segments WHERE gen > ?", (gen,))
        db.execute("DELETE FROM copies WHERE gen > ?", (gen,))
        db.execute("DELETE FROM dropped WHERE gen > ?", (gen,))
        self._set_meta(gen=gen)
        db.execute("COMMIT")
        self.gen, self.maps, self.referenced, self._lazy_dicts = gen, {}, set(), {}
        self._restored_keys, self._read = {}, {}
        with collector_paused():
            return _GraphUnpickler(io.BytesIO(header.graph), self).load()

    def _load_map(self, map_id: int, cls: type[TrackedDict[Any, Any]]) -> TrackedDict[Any, Any]:
        """A dict as of this generation, in its original order: its live segments replayed, oldest
        first (a key's latest entry wins), then its keys put back in position order."""
        segments = self.maps[map_id] = _Segments()
        where = segments.where
        stored: dict[Any, Any] = {}
        top = -1
        rows = self.db.execute(
            "SELECT seg, data FROM segments WHERE map = ? AND seg NOT IN (SELECT seg FROM copies) ORDER BY seg",
            (map_id,),
        )
        current = segments.current
        for seg, data in rows:
            keys, seqs, values, deleted = pickle.loads(data)
            if values is None:  # stored apart, read when first needed: meanwhile, where they are
                values = repeat(seg, len(keys))
                self._restored_keys[seg] = keys
            high = seg << _SEQ_BITS
            current[seg] = 0  # live; its current entries are counted when first needed
            for key in deleted:
                at = where.pop(key, None)
                stored.pop(key, None)
                if at is not None:  # the entry it deletes is in a live segment
                    segments.deletes(seg, at >> _SEQ_BITS)
            where.update(zip(keys, [high | seq for seq in seqs], strict=True))
            stored.update(zip(keys, values, strict=True))
            if seqs:
                top = max(top, max(seqs))
            segments.live.append((seg, len(keys)))
            segments.stored += len(keys)
        # Counting is a pass over every key: left to the first snapshot that changes the dict.
        segments.counted, segments.maybe_dead = False, True
        tracked = cls.restored(_in_position_order(where, top + 1), stored, self)
        tracked.store_id, tracked.next_seq = (self.owner, map_id), top + 1
        self.referenced.add(map_id)
        if cls.mutable:
            self._lazy_dicts[map_id] = weakref.ref(tracked)
        return tracked


class _Values:
    """A segment's pickled values as stored apart from its keys: ``b"\\0"``, each value's end
    (little-endian 64-bit), then the values end to end (a pickled list, as this layout's first
    version wrote them, is read too). One bytes object per segment, sliced as values are read."""

    __slots__ = ("_blob", "_ends", "_index", "_list", "keys")

    def __init__(self, keys: list[Any], blob: bytes) -> None:
        self.keys = keys
        self._blob = blob
        self._index: dict[Any, int] | None = None
        self._list: list[bytes] | None = None
        self._ends: tuple[int, ...] = ()
        if blob[:1] == b"\0":
            self._ends = struct.unpack_from(f"<{len(keys)}Q", blob, 1)
        else:
            self._list = pickle.loads(blob)

    @staticmethod
    def pack(values: list[bytes]) -> bytes:
        ends, end = [], 0
        for value in values:
            end += len(value)
            ends.append(end)
        return b"".join([b"\0", struct.pack(f"<{len(ends)}Q", *ends), *values])

    def _at(self, i: int) -> bytes:
        if self._list is not None:
            return self._list[i]
        ends = self._ends
        base = 1 + 8 * len(ends)
        return self._blob[base + (ends[i - 1] if i else 0) : base + ends[i]]

    def of(self, key: Any) -> bytes:
        index = self._index
        if index is None:
            index = self._index = dict(zip(self.keys, range(len(self.keys)), strict=True))
        return self._at(index[key])

    def all(self) -> list[bytes]:
        if self._list is not None:
            return self._list
        blob, ends = self._blob, self._ends
        base = 1 + 8 * len(ends)
        starts = (0, *ends[:-1]) if ends else ()
        return [blob[base + start : base + end] for start, end in zip(starts, ends, strict=True)]


# Module-level classes, not classes made per call: a class is garbage only the cyclic collector
# frees, and through its methods' closures it would keep a snapshot's writes alive until then.
class _GraphPickler(pickle.Pickler):
    """Pickles a shard's state with each tracked dict as a reference to ``store``, its changes
    taken into ``writes`` (map id -> what to append)."""

    def __init__(self, file: io.BytesIO, store: EntityStore, writes: dict[int, _Write]) -> None:
        super().__init__(file, protocol=_PROTOCOL)
        self.store = store
        self.writes = writes

    def persistent_id(self, obj: Any) -> Any:
        if not isinstance(obj, TrackedDict):
            return None
        store = self.store
        if obj.store_id is None:
            obj.store_id = (store.owner, store.next_map)
            store.next_map += 1
        elif obj.store_id[0] != store.owner:
            return None  # another shard's dict (shared by reference): pickled whole, inline
        map_id = obj.store_id[1]
        if map_id not in self.writes:
            self.writes[map_id] = store._changes(obj, map_id)
        return ("map", map_id, type(obj))


class _GraphUnpickler(pickle.Unpickler):
    """Loads a shard's state, each tracked dict read from ``store``."""

    def __init__(self, file: io.BytesIO, store: EntityStore) -> None:
        super().__init__(file)
        self.store = store

    def persistent_load(self, pid: Any) -> Any:
        _, map_id, cls = pid
        return self.store._load_map(map_id, cls)


def _in_position_order(where: dict[Any, int], positions: int) -> list[Any]:
    """The keys of ``where`` by position (positions below ``positions``, mostly dense)."""
    if positions > 4 * len(where) + 1024:  # sparse after much deletion: a sort is cheaper
        return sorted(where, key=lambda key: where[key] & _SEQ_MASK)
    slots: list[Any] = [UNLOADED] * positions
    for key, at in where.items():
        slots[at & _SEQ_MASK] = key
    return [key for key in slots if key is not UNLOADED]
