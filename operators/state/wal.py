"""Write-ahead logs checkpointed on a thread of their own.

An entity store commits a snapshot to its write-ahead log; a *checkpoint*
copies the log into the database file and syncs it to disk. SQLite's
automatic checkpoint runs inside the commit that crosses its threshold, so a
snapshot now and then paid for a disk sync, and the whole flow waited for it:
every shard snapshots at the same epoch, so live outputs stalled at each one.
Here a store asks for a checkpoint after its commit once its log is past a
size, and one daemon thread per process runs them on connections of their
own; SQLite lets a checkpoint run beside the writer, and Python's ``sqlite3``
lets go of the GIL while SQLite works.

>>> import sqlite3, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "s.sqlite3"
>>> db = sqlite3.connect(path, isolation_level=None)
>>> _ = db.executescript("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t (x BLOB);")
>>> _ = db.execute("INSERT INTO t VALUES (zeroblob(100000))")
>>> log = Checkpointed(path, threshold=50_000)
>>> log.after_commit()  # past the threshold: a checkpoint is queued
True
>>> log.settle(); log.checkpoints
1
>>> log.close(); db.close()
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class Checkpointed:
    """The write-ahead log of the SQLite database at ``path``: checkpointed off the caller's thread
    once it is over ``threshold`` bytes after a commit."""

    def __init__(self, path: Path, threshold: int) -> None:
        self.wal = path.with_name(path.name + "-wal")
        self.threshold = threshold
        self.checkpoints = 0  # completed
        self._path = path
        self._db: sqlite3.Connection | None = None  # the checkpointer's own connection, opened by it
        self._idle = threading.Event()
        self._idle.set()

    def after_commit(self) -> bool:
        """Call after a commit: True if a checkpoint was queued (the log is past the threshold and
        none is pending)."""
        if not self._idle.is_set():
            return False
        try:
            size = self.wal.stat().st_size
        except FileNotFoundError:
            return False
        if size <= self.threshold:
            return False
        self._idle.clear()
        _checkpointer().put(self)
        return True

    def settle(self) -> None:
        """Wait until no checkpoint of this log is pending."""
        self._idle.wait()

    def close(self) -> None:
        """Wait for a pending checkpoint, then close the checkpointer's connection."""
        self.settle()
        if self._db is not None:
            self._db.close()
            self._db = None

    def _run(self) -> None:
        try:
            if self._db is None:
                self._db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.Error as exc:  # the next commit asks again; the log only grows meanwhile
            log.warning("checkpoint of %s failed: %s", self._path, exc)
        finally:
            self._idle.set()


_queue: queue.SimpleQueue[Checkpointed] | None = None
_lock = threading.Lock()


def _checkpointer() -> queue.SimpleQueue[Checkpointed]:
    """The queue of this process's checkpoint thread (started on first use)."""
    global _queue
    with _lock:
        if _queue is None:
            _queue = queue.SimpleQueue()
            threading.Thread(target=_work, args=(_queue,), name="channelflow-checkpoints", daemon=True).start()
        return _queue


def _work(requests: queue.SimpleQueue[Checkpointed]) -> None:
    while True:
        requests.get()._run()
