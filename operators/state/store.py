"""Incremental snapshots: a shard's state as a small pickled header plus stored entries.

A recovery snapshot of a shard pickles its whole object graph but for each
:class:`~operators.state.tracked.TrackedDict` in it, which the header names by
id. The entries of those dicts live in an :class:`EntityStore` (one SQLite file
per shard), written at each snapshot only for the keys that changed since the
previous one. Each snapshot is a *generation*: its entries are rows tagged with
it, and the header records it.

Bytewax stores the header (``EntityStore.snapshot`` returns its bytes) and,
after a crash, hands back the header of the last snapshot it committed, which
may be a generation or two older than the last one written here. A restore
therefore drops rows of later generations and reads, per key, its latest row
at or before the header's generation. Superseded rows are deleted only
``retain`` generations later, so every header Bytewax may still hand back
finds its rows; an older one is refused (:class:`StoreError`), never read
wrongly.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from operators.state.tracked import TrackedDict

#: Generations a superseded entry is kept for (Bytewax may resume from a snapshot this much older).
RETAIN = 8

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    map INTEGER NOT NULL, key NOT NULL, gen INTEGER NOT NULL, seq INTEGER NOT NULL, value BLOB,
    PRIMARY KEY (map, key, gen)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_gen ON entries (gen);
CREATE TABLE IF NOT EXISTS dropped (map INTEGER PRIMARY KEY, gen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_PROTOCOL = pickle.HIGHEST_PROTOCOL
#: An entry's row: map, key, generation, position, pickled value (None: deleted).
Row = tuple[int, str | bytes, int, int, bytes | None]
#: A changed entry stored before, at its own position: generation, pickled value, map, key.
Update = tuple[int, bytes | None, int, str | bytes]


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


class EntityStore:
    """One shard's entries, by generation, in a SQLite file (see the module docstring)."""

    def __init__(self, path: Path, *, retain: int = RETAIN) -> None:
        self.path = path
        self.owner = str(path.resolve())  # what a tracked dict it holds is marked with
        self.retain = retain
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # WAL with NORMAL sync: a killed process loses nothing committed; only power loss can lose
        # the last commits, which Bytewax then replays from an older snapshot and offset.
        self.db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;" + _SCHEMA)
        meta = dict(self.db.execute("SELECT name, value FROM meta"))
        self.gen: int = meta.get("gen", 0)
        self.safe_from: int = meta.get("safe_from", 0)
        self.next_map: int = meta.get("next_map", 1)
        self.maps: set[int] = set()  # the maps the last snapshot (or restore) referenced
        self.last_written = 0

    def close(self) -> None:
        self.db.close()

    def reset(self) -> None:
        """Forget everything: for a shard that starts afresh (no snapshot of it was committed)."""
        self.db.executescript("BEGIN; DELETE FROM entries; DELETE FROM dropped; DELETE FROM meta; COMMIT;")
        self.gen, self.safe_from, self.next_map, self.maps = 0, 0, 1, set()

    # -- snapshot ----------------------------------------------------------------------

    def snapshot(self, state: object) -> bytes:
        """Store what changed in ``state``'s tracked dicts as a new generation; the header bytes."""
        gen = self.gen + 1
        rows: list[Row] = []  # new keys, at the next positions
        updates: list[Update] = []  # keys stored before, at their own position
        referenced: set[int] = set()
        store = self

        class Pickler(pickle.Pickler):
            def persistent_id(self, obj: Any) -> Any:
                if not isinstance(obj, TrackedDict):
                    return None
                if obj.store_id is None:
                    obj.store_id = (store.owner, store.next_map)
                    store.next_map += 1
                elif obj.store_id[0] != store.owner:
                    return None  # another shard's dict (shared by reference): pickled whole, inline
                map_id = obj.store_id[1]
                if map_id not in referenced:
                    referenced.add(map_id)
                    store._changed_rows(obj, map_id, gen, rows, updates)
                return ("map", map_id, type(obj))

        buffer = io.BytesIO()
        Pickler(buffer, protocol=_PROTOCOL).dump(state)
        header = pickle.dumps(Header(self.path.name, gen, buffer.getvalue()), protocol=_PROTOCOL)
        db = self.db
        db.execute("BEGIN")
        try:
            db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?)", rows)
            db.executemany(
                "INSERT OR REPLACE INTO entries SELECT map, key, ?, seq, ? FROM entries "
                "WHERE map = ? AND key = ? ORDER BY gen DESC LIMIT 1",
                updates,
            )
            db.executemany("INSERT OR REPLACE INTO dropped VALUES (?, ?)", [(m, gen) for m in self.maps - referenced])
            db.executemany("DELETE FROM dropped WHERE map = ?", [(m,) for m in referenced - self.maps])
            self._collect(gen - self.retain)
            self._set_meta(gen=gen, next_map=self.next_map, safe_from=self.safe_from)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.gen, self.maps, self.last_written = gen, referenced, len(rows) + len(updates)
        return header

    @staticmethod
    def _changed_rows(
        tracked: TrackedDict[Any, Any], map_id: int, gen: int, rows: list[Row], updates: list[Update]
    ) -> None:
        """The rows of what changed in ``tracked``: a key inserted since the last snapshot takes the
        next position (so a restore iterates in the dict's order); another keeps its own."""
        changed, added = tracked.take_changes()
        dumps, get = pickle.dumps, dict.get
        seq = tracked.next_seq
        if changed is None:  # never stored: every entry
            rows.extend((map_id, _key(k), gen, n, dumps(v, _PROTOCOL)) for n, (k, v) in enumerate(dict.items(tracked), seq))
            tracked.next_seq = seq + len(tracked)
            return
        assert added is not None
        for key in added:
            rows.append((map_id, _key(key), gen, seq, dumps(dict.__getitem__(tracked, key), _PROTOCOL)))
            seq += 1
        tracked.next_seq = seq
        for key in changed:
            if key in added:
                continue
            value = get(tracked, key, _GONE)  # gone: a tombstone, at the position of the entry it ends
            updates.append((gen, None if value is _GONE else dumps(value, _PROTOCOL), map_id, _key(key)))

    def _collect(self, old: int) -> None:
        """Delete what no restore at generation ``old`` or later reads: entries superseded by one
        written at ``old`` (and tombstones written then), and maps dropped by then."""
        if old <= self.safe_from:
            return
        db = self.db
        for gen in range(self.safe_from + 1, old + 1):
            written = db.execute("SELECT map, key, value IS NULL FROM entries WHERE gen = ?", (gen,)).fetchall()
            db.executemany(
                "DELETE FROM entries WHERE map = ? AND key = ? AND gen < ?",
                [(m, k, gen + gone) for m, k, gone in written],
            )
            for (map_id,) in db.execute("SELECT map FROM dropped WHERE gen = ?", (gen,)).fetchall():
                db.execute("DELETE FROM entries WHERE map = ?", (map_id,))
            db.execute("DELETE FROM dropped WHERE gen = ?", (gen,))
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
        db.execute("DELETE FROM entries WHERE gen > ?", (gen,))
        db.execute("DELETE FROM dropped WHERE gen > ?", (gen,))
        self._set_meta(gen=gen)
        db.execute("COMMIT")
        self.gen = gen
        store = self

        class Unpickler(pickle.Unpickler):
            def persistent_load(self, pid: Any) -> Any:
                _, map_id, cls = pid
                return store._load_map(map_id, cls)

        return Unpickler(io.BytesIO(header.graph)).load()

    def _load_map(self, map_id: int, cls: type[TrackedDict[Any, Any]]) -> TrackedDict[Any, Any]:
        """A map as of this generation, in its original order: each key's latest row (read in the
        table's own order, a sequential scan), the deleted ones dropped, by position."""
        latest: dict[Any, tuple[int, bytes | None]] = {}
        top = -1
        for stored, seq, value in self.db.execute("SELECT key, seq, value FROM entries WHERE map = ? ORDER BY key, gen",
                                                  (map_id,)):  # fmt: skip
            latest[stored] = (seq, value)
            top = max(top, seq)
        present = sorted((seq, stored, value) for stored, (seq, value) in latest.items() if value is not None)
        del latest
        loads = pickle.loads
        tracked = cls((loads(stored) if type(stored) is bytes else stored, loads(value)) for _, stored, value in present)
        tracked.changed, tracked.store_id, tracked.next_seq = set(), (self.owner, map_id), top + 1
        self.maps.add(map_id)
        return tracked


_GONE: Any = object()


def _key(key: object) -> str | bytes:
    """A key as stored: a string as SQLite text (read back without unpickling), anything else pickled."""
    return key if type(key) is str else pickle.dumps(key, _PROTOCOL)
