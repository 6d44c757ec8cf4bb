"""A kill -9 and a restart give the outputs of an uninterrupted run (re-emitted records identical)."""

from __future__ import annotations

import pickle
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from channelflow.broker import EmbeddedBroker, free_port
from channelflow.recovery import KEYS_FILE
from channelflow.simulator import DEFAULT_LOCATIONS, SimulationSettings, simulate
from flows.placement import CURRENT, Placement, stage_keys
from flows.stateful import ENTITIES_DIR, EntityStores
from operators.anomalies.domain import CHANNEL_GROUPS, group_shard
from operators.time.units import DAY_MS
from tests.conftest import make_config
from tests.flow_harness import closing_events, produce_events, read_json, run_to_end
from tests.flows.test_cluster import ROOT, _env, _scrape, _wait_for, committed_epoch

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTPUT_TOPICS = ("inventory_updates", "customer_scores", "promotions", "alerts")


def _distinct(records: list[dict[str, Any]]) -> set[str]:
    return {repr(sorted(r.items())) for r in records}


def _state_keys(recovery: Path) -> set[str]:
    """The Bytewax keys the recovery partitions hold state under."""
    keys: set[str] = set()
    for part in recovery.glob("part-*.sqlite3"):
        with sqlite3.connect(part) as db:
            keys.update(key for (key,) in db.execute("SELECT DISTINCT state_key FROM snaps"))
    return keys


def _groups_by_shard(recovery: Path) -> dict[int, set[str]]:
    """The window groups each anomaly shard's latest snapshot holds (read as a restart would)."""
    stores = EntityStores(recovery / ENTITIES_DIR)
    held: dict[int, set[str]] = {}
    for part in recovery.glob("part-*.sqlite3"):
        with sqlite3.connect(part) as db:
            rows = db.execute("SELECT ser_change FROM snaps s WHERE state_key LIKE 'anomaly-%' AND snap_epoch = "
                              "(SELECT MAX(snap_epoch) FROM snaps WHERE state_key = s.state_key)").fetchall()  # fmt: skip
        for (change,) in rows:
            header = pickle.loads(change)
            if header is not None:
                shard, _ = stores.read(header)
                held[shard.domain.shard] = {*shard.domain._next_start, *shard.domain._idle}  # timed or idle
    return held


# A directory as each release left it: "plain" before balanced keys, "balanced" before the
# anomaly stage placed its channel groups, and today's.
@pytest.mark.parametrize("record", ["balanced placed-groups", "balanced", "plain"])
def test_kill_9_and_restart_writes_what_an_uninterrupted_run_writes(
    broker: EmbeddedBroker, tmp_path: Path, record: str
) -> None:
    log = list(simulate(SimulationSettings(seed=13, customers=400, days=2, anomalies=True), DEFAULT_LOCATIONS))
    # The first day, then the second (the log opens with every location's stock at one instant).
    day_two = log[0]["ts"] + DAY_MS
    first, second = [e for e in log if e["ts"] < day_two], [e for e in log if e["ts"] >= day_two]
    # Events that change nothing, on every partition, at the end of the first day: the live run's
    # watermark passes nearly all of it, so the kill comes after outputs were written, not before.
    first += closing_events(first[-1]["ts"], spread=8)
    log = first + second

    reference = make_config(broker, partitions=2)
    produce_events(reference, log)
    run_to_end(reference)
    expected = {topic: _distinct(read_json(reference, topic)) for topic in OUTPUT_TOPICS}
    assert all(expected[topic] for topic in ("inventory_updates", "customer_scores", "promotions"))

    config = make_config(broker, tmp_path, partitions=2)
    if record != CURRENT.record():
        (tmp_path / "recovery").mkdir()
        (tmp_path / "recovery" / KEYS_FILE).write_text(f"{record}\n")
    port = free_port()
    env = _env(config, CHANNELFLOW_METRICS__PORT=str(port))
    produce_events(config, first)
    live = subprocess.Popen([sys.executable, "-m", "channelflow.cli", "run"], env=env, cwd=ROOT)
    try:
        _wait_for(lambda: _scrape(port).get("channelflow_events_total", 0) >= len(first) // 2, timeout=120)
        # Killed after it has written outputs: the restart must pick up a flow in mid-stream.
        _wait_for(lambda: _scrape(port).get("channelflow_output_records_total", 0) > 0, timeout=120)
        _wait_for(lambda: committed_epoch(tmp_path / "recovery") >= 1, timeout=120)
        live.send_signal(signal.SIGKILL)
        live.wait(timeout=30)
    finally:
        if live.poll() is None:
            live.kill()
    produce_events(config, second)
    restarted = subprocess.run(
        [sys.executable, "-m", "channelflow.cli", "run", "--until-end"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert restarted.returncode == 0, restarted.stderr
    assert "end of input" in restarted.stdout and "records written:" in restarted.stdout
    for topic in OUTPUT_TOPICS:
        # At least once: records after the last snapshot are written again, identical.
        assert _distinct(read_json(config, topic)) == expected[topic], topic
    assert (tmp_path / "recovery" / KEYS_FILE).read_text().strip() == record
    stages = ("sequence", "promotions")
    placement = Placement.parse(record)
    named = {key for stage in stages for key in stage_keys(stage, config.flow.shards, balanced=placement.balanced_keys)}
    held = {key for key in _state_keys(tmp_path / "recovery") if key.startswith(tuple(f"{s}-" for s in stages))}
    assert held and held <= named, held - named
    # The anomaly stage kept its channel groups where the directory's placement puts them.
    groups = _groups_by_shard(tmp_path / "recovery")
    for group in CHANNEL_GROUPS:
        assert {k for k, held_groups in groups.items() if group in held_groups} == {
            group_shard(group, config.flow.shards, placement.placed_groups)
        }, group
