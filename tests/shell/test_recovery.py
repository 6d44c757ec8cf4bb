"""Recovery partitions: created once, a half-created directory repaired or reported with its fix."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from channelflow.broker import EmbeddedBroker
from channelflow.recovery import (
    FORMAT_FILE,
    KEYS_FILE,
    SHARDS_FILE,
    STATE_FORMAT,
    RecoveryDirError,
    hold_run_lock,
    placement,
    prepare_recovery_dir,
)
from channelflow.summary import run_summary
from flows.placement import CURRENT, PLAIN, Placement
from tests.conftest import make_config
from tests.flow_harness import closing_events, produce_events
from tests.flows.test_cluster import ROOT, _env


def _parts(db_dir: Path) -> list[str]:
    return sorted(p.name for p in db_dir.glob("part-*.sqlite3"))


def test_a_fresh_directory_gets_every_partition_and_no_scratch(tmp_path: Path) -> None:
    prepare_recovery_dir(tmp_path / "rec", 3)
    assert _parts(tmp_path / "rec") == ["part-0.sqlite3", "part-1.sqlite3", "part-2.sqlite3"]
    assert not list((tmp_path / "rec").glob(".init-*"))
    prepare_recovery_dir(tmp_path / "rec", 5)  # complete: the recorded count wins, nothing is touched
    assert len(_parts(tmp_path / "rec")) == 3


def test_a_half_created_directory_without_state_is_created_again(tmp_path: Path) -> None:
    db_dir = tmp_path / "rec"
    prepare_recovery_dir(db_dir, 4)
    (db_dir / "part-2.sqlite3").unlink()
    (db_dir / "part-3.sqlite3").unlink()  # as if killed during the first start
    prepare_recovery_dir(db_dir, 4)
    assert len(_parts(db_dir)) == 4


def test_a_half_created_directory_with_state_is_reported_with_its_fix(tmp_path: Path) -> None:
    db_dir = tmp_path / "rec"
    prepare_recovery_dir(db_dir, 2)
    with sqlite3.connect(db_dir / "part-0.sqlite3") as db:
        db.execute("INSERT INTO commits (part_index, commit_epoch) VALUES (0, 7)")
    (db_dir / "part-1.sqlite3").unlink()
    with pytest.raises(RecoveryDirError, match=f"rm -r {db_dir}"):
        prepare_recovery_dir(db_dir, 2)
    assert _parts(db_dir) == ["part-0.sqlite3"]  # nothing deleted


def test_state_of_another_format_is_refused_with_its_fix(tmp_path: Path) -> None:
    db_dir = tmp_path / "rec"
    prepare_recovery_dir(db_dir, 2)
    assert (db_dir / FORMAT_FILE).read_text().strip() == str(STATE_FORMAT)
    with sqlite3.connect(db_dir / "part-0.sqlite3") as db:
        db.execute("INSERT INTO commits (part_index, commit_epoch) VALUES (0, 7)")
    prepare_recovery_dir(db_dir, 2)  # its own format: resumed
    (db_dir / FORMAT_FILE).unlink()  # as written by a release before the format was recorded
    with pytest.raises(RecoveryDirError, match=f"format 1 .*rm -r {db_dir}"):
        prepare_recovery_dir(db_dir, 2)


def test_a_directory_without_state_takes_this_format(tmp_path: Path) -> None:
    db_dir = tmp_path / "rec"
    prepare_recovery_dir(db_dir, 2)
    (db_dir / FORMAT_FILE).write_text("1\n")
    prepare_recovery_dir(db_dir, 2)  # nothing to misread
    assert (db_dir / FORMAT_FILE).read_text().strip() == str(STATE_FORMAT)


def test_a_directory_keeps_the_placement_its_state_was_written_with(tmp_path: Path) -> None:
    assert placement(None) == CURRENT  # no recovery
    fresh = tmp_path / "fresh"
    assert placement(fresh) == CURRENT
    prepare_recovery_dir(fresh, 2)
    assert (fresh / KEYS_FILE).read_text().strip() == "balanced placed-groups" and placement(fresh) == CURRENT

    older = tmp_path / "older"  # state written by a release before the placement was recorded
    prepare_recovery_dir(older, 2)
    (older / KEYS_FILE).unlink()
    with sqlite3.connect(older / "part-0.sqlite3") as db:
        db.execute("INSERT INTO commits (part_index, commit_epoch) VALUES (0, 7)")
    assert placement(older) == PLAIN
    prepare_recovery_dir(older, 2)
    assert (older / KEYS_FILE).read_text().strip() == "plain" and placement(older) == PLAIN

    (older / KEYS_FILE).write_text("balanced\n")  # the release that balanced keys but hashed groups
    prepare_recovery_dir(older, 2)
    assert placement(older) == Placement(balanced_keys=True, placed_groups=False)
    assert (older / KEYS_FILE).read_text().strip() == "balanced"

    (older / KEYS_FILE).write_text("balanced sideways\n")  # a later release's record
    with pytest.raises(RecoveryDirError, match="sideways"):
        placement(older)


def test_one_run_per_directory_and_process(tmp_path: Path) -> None:
    """Two runs of process 0 over one directory both wrote its state: one crashed on the other's
    snapshot, and the directory could be left unusable. The second is refused while the first runs."""
    prepare_recovery_dir(tmp_path, 2)
    first = hold_run_lock(tmp_path, 0)
    with pytest.raises(RecoveryDirError, match="in use by another channelflow run \\(process 0\\)"):
        hold_run_lock(tmp_path, 0)
    with hold_run_lock(tmp_path, 1):  # process 1 of the same cluster: its own lock
        pass
    first.close()  # the first run ends (a killed process's lock goes with it)
    hold_run_lock(tmp_path, 0).close()


def test_a_directory_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(RecoveryDirError, match=f"recovery directory {blocked / 'rec'} cannot be written"):
        prepare_recovery_dir(blocked / "rec", 2)


def test_the_end_of_run_summary_reads_the_flow_metrics() -> None:
    text = run_summary()
    assert text.splitlines()[0].startswith("records written: ")
    assert "dead letters: " in text and "duplicates dropped: " in text and "late events (applied): " in text


def test_state_written_with_another_shard_count_is_refused_naming_the_key(tmp_path: Path) -> None:
    db_dir = tmp_path / "rec"
    prepare_recovery_dir(db_dir, 2, shards=8)
    assert (db_dir / SHARDS_FILE).read_text().strip() == "8"
    prepare_recovery_dir(db_dir, 2, shards=16)  # no state yet: the new count is recorded
    with sqlite3.connect(db_dir / "part-0.sqlite3") as db:
        db.execute("INSERT INTO commits (part_index, commit_epoch) VALUES (0, 7)")
    prepare_recovery_dir(db_dir, 2, shards=16)  # the count it was written with: resumed
    with pytest.raises(RecoveryDirError, match=f"flow.shards is 8, .* written with 16 .*rm -r {db_dir}"):
        prepare_recovery_dir(db_dir, 2, shards=8)
    (db_dir / SHARDS_FILE).unlink()  # as written by a release before the count was recorded
    prepare_recovery_dir(db_dir, 2, shards=8)
    assert (db_dir / SHARDS_FILE).read_text().strip() == "8"


@pytest.mark.integration
def test_a_run_with_another_shard_count_stops_naming_the_key(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """A real run writes state with 8 shards; the next one, with 4, stops before it reads anything."""
    config = make_config(broker, tmp_path, partitions=1)
    produce_events(config, closing_events(1_795_348_800_000))
    run = [sys.executable, "-m", "channelflow.cli", "run", "--until-end"]
    first = subprocess.run(run, env=_env(config), cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert first.returncode == 0, first.stderr
    assert config.flow.recovery_dir is not None and (config.flow.recovery_dir / SHARDS_FILE).read_text().strip() == "8"

    again = subprocess.run(run, env=_env(config, CHANNELFLOW_FLOW__SHARDS="4"), cwd=ROOT, capture_output=True,
                           text=True, timeout=180, check=False)  # fmt: skip
    assert again.returncode == 2, again.stderr
    assert "flow.shards is 4" in again.stderr and "written with 8" in again.stderr
    assert "Traceback" not in again.stderr

    (config.flow.recovery_dir / KEYS_FILE).write_text("balanced sideways\n")  # a later release's placement
    later = subprocess.run(run, env=_env(config), cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert later.returncode == 2, later.stderr
    assert KEYS_FILE in later.stderr and "'balanced sideways'" in later.stderr and "Traceback" not in later.stderr
