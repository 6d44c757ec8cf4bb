"""Bytewax recovery partitions: created once, atomically enough to survive a kill, and checked.

``python -m bytewax.recovery DIR N`` writes N SQLite partitions one after
the other; a kill in between leaves a directory on which every run fails
(``MissingPartitionsError``). :func:`prepare_recovery_dir` creates the
partitions in a scratch folder inside the directory and moves them into place,
and on start repairs a half-created directory when no partition holds any
snapshot yet (nothing can be lost), or stops with the command that fixes it.

Snapshots are pickled domain objects, so a release that changes their layout
cannot read an older directory's state correctly. The directory records the
:data:`STATE_FORMAT` it was written with; a run refuses state of another
format (and says how to start afresh) rather than resume from garbled state.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import sqlite3
from pathlib import Path
from typing import IO

from bytewax.recovery import init_db_dir

from flows.placement import CURRENT, PLAIN, Placement

log = logging.getLogger("channelflow")

_PART = "part-*.sqlite3"
#: The layout of the pickled state. Bump it when a snapshotted class changes incompatibly
#: (2: the churn snapshots' 16th feature, the profile's line count, the windowed churn model;
#: 3: incremental snapshots, a header in Bytewax's partitions and entries in entity stores;
#: 4: entity stores as logs of segments, profiles and promotion records pickled as calls).
STATE_FORMAT = 4
#: The file in a recovery directory that records its state format (absent: format 1).
FORMAT_FILE = "channelflow-state-format"
#: The file that records the ``flow.shards`` its state was written with (entities are keyed by shard).
SHARDS_FILE = "channelflow-shards"
#: The file that records the :class:`flows.placement.Placement` of the state's shards: how they
#: are named as Bytewax keys and where the anomaly stage's groups are (absent in directories
#: written before it existed).
KEYS_FILE = "channelflow-keys"


class RecoveryDirError(RuntimeError):
    """The recovery directory cannot be used as it is; the message says how to fix it."""


def _partition_info(path: Path) -> tuple[int | None, bool]:
    """(partition count recorded in ``path``, whether it holds any state); (None, False) if unreadable."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            count = db.execute("SELECT MAX(part_count) FROM parts").fetchone()[0] if "parts" in tables else None
            held = any(
                db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None
                for table in ("snaps", "commits", "fronts", "exs")
                if table in tables
            )
            return count, held
    except sqlite3.Error:
        return None, False


def _lock_file(db_dir: Path, name: str) -> IO[str]:
    """``db_dir / name``, opened for a lock (``db_dir`` made if need be)."""
    try:
        db_dir.mkdir(parents=True, exist_ok=True)
        return open(db_dir / name, "w")  # the caller holds it
    except OSError as exc:
        raise RecoveryDirError(f"recovery directory {db_dir} cannot be written: {exc.strerror}") from None


def hold_run_lock(db_dir: Path, process_id: int) -> IO[str]:
    """Take process ``process_id``'s lock on ``db_dir`` for as long as the returned file stays open:
    two runs of the same process over one directory would both write its state (one of them
    crashed on the other's snapshot, and the directory could be left unusable)."""
    lock = _lock_file(db_dir, f".run-{process_id}.lock")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise RecoveryDirError(
            f"recovery directory {db_dir} is in use by another channelflow run (process {process_id}): "
            "one run per directory and process; stop the other, or give this one its own flow.recovery_dir"
        ) from None
    return lock


def prepare_recovery_dir(db_dir: Path, partitions: int, shards: int | None = None) -> None:
    """Make ``db_dir`` hold a complete set of recovery partitions (once, even with several local processes);
    with ``shards``, refuse state written with another ``flow.shards``."""
    with _lock_file(db_dir, ".init.lock") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        parts = sorted(db_dir.glob(_PART))
        if parts:
            infos = [_partition_info(p) for p in parts]
            counts = {count for count, _ in infos if count is not None}
            expected = counts.pop() if len(counts) == 1 else None
            names = {p.name for p in parts}
            complete = expected is not None and names == {f"part-{i}.sqlite3" for i in range(expected)}
            held = any(held for _, held in infos)
            if complete:
                _check_format(db_dir, held)
                _check_shards(db_dir, held, shards)
                _record_keys(db_dir, held)
                return
            if held:
                raise RecoveryDirError(
                    f"recovery directory {db_dir} is incomplete ({len(parts)} partition files, "
                    f"expected {expected if expected is not None else 'a consistent count'}) and holds state; "
                    f"restore the missing partitions from a backup, or start afresh with: rm -r {db_dir}"
                )
            log.warning("recovery directory %s was half-created (no state in it): creating it again", db_dir)
            for part in parts:
                part.unlink()
        scratch = db_dir / f".init-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        init_db_dir(scratch, partitions)
        for i in range(partitions):  # the last rename completes the set; until then a restart repairs it
            (scratch / f"part-{i}.sqlite3").rename(db_dir / f"part-{i}.sqlite3")
        scratch.rmdir()
        (db_dir / FORMAT_FILE).write_text(f"{STATE_FORMAT}\n")
        _check_shards(db_dir, False, shards)
        _record_keys(db_dir, False)
        log.info("created %d recovery partitions in %s", partitions, db_dir)


def placement(db_dir: Path | None) -> Placement:
    """Where the flow puts its shards and their entities (:class:`flows.placement.Placement`):
    the one the directory records; without a record, today's, unless the directory already
    holds state (written before the record existed: the plain placement). Without recovery,
    today's.

    Raises RecoveryDirError on a record this release does not know."""
    if db_dir is None:
        return CURRENT
    path = db_dir / KEYS_FILE
    try:
        return Placement.parse(path.read_text())
    except FileNotFoundError:
        return _unrecorded(any(_partition_info(part)[1] for part in db_dir.glob(_PART)))
    except ValueError as exc:
        raise RecoveryDirError(f"{path}: {exc}, written by a later release of channelflow") from exc


def _record_keys(db_dir: Path, held: bool) -> None:
    """Record the placement of a directory that has no record yet (see :func:`placement`)."""
    path = db_dir / KEYS_FILE
    if not path.exists():
        path.write_text(f"{_unrecorded(held).record()}\n")


def _unrecorded(held: bool) -> Placement:
    """The placement of a directory without a record: that of state written before records
    existed if it ``held`` any, else today's."""
    return PLAIN if held else CURRENT


def _check_format(db_dir: Path, held: bool) -> None:
    """Refuse state of another format; a directory without state just takes this one."""
    path = db_dir / FORMAT_FILE
    try:
        found = int(path.read_text().strip())
    except FileNotFoundError:
        found = 1
    except ValueError:
        found = -1
    if found == STATE_FORMAT:
        return
    if held:
        raise RecoveryDirError(
            f"recovery directory {db_dir} holds state of format {found} ({path}); this version reads format "
            f"{STATE_FORMAT}. Start afresh (the flow replays its inputs from the start) with: rm -r {db_dir}"
        )
    path.write_text(f"{STATE_FORMAT}\n")


def _check_shards(db_dir: Path, held: bool, shards: int | None) -> None:
    """Refuse state written with another shard count: every entity's state lives in the shard of
    its key, so with another count most entities would find none. A directory without a record
    (older releases) takes today's count."""
    if shards is None:
        return
    path = db_dir / SHARDS_FILE
    try:
        found: int | None = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        found = None
    if held and found is not None and found != shards:
        raise RecoveryDirError(
            f"flow.shards is {shards}, but the state in recovery directory {db_dir} was written with {found} "
            f"shards ({path}): set flow.shards = {found} again, or start afresh (the flow replays its inputs "
            f"from the start) with: rm -r {db_dir}"
        )
    if found != shards:
        path.write_text(f"{shards}\n")
