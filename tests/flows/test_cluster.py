"""The flow as operators run it: several processes, SIGTERM, restart from recovery."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from channelflow.broker import EmbeddedBroker, free_port
from channelflow.config import Config
from channelflow.demo import scrape
from tests.conftest import make_config
from tests.flow_harness import T0, produce_events, read_json, valid_event
from tests.flows.test_flow_ingest import BAD_MESSAGES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _env(config: Config, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELFLOW_")}
    env.update({f"CHANNELFLOW_KAFKA__TOPICS__{k.upper()}": v for k, v in config.kafka.topics.items()})
    env["CHANNELFLOW_KAFKA__BROKERS"] = config.kafka.bootstrap
    env["CHANNELFLOW_METRICS__PORT"] = str(config.metrics.port)
    env["CHANNELFLOW_FLOW__RECOVERY_DIR"] = str(config.flow.recovery_dir or "none")
    env["CHANNELFLOW_FLOW__SNAPSHOT_INTERVAL"] = "1s"
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _run_processes(command: list[str], processes: int, env: dict[str, str]) -> None:
    ports = [free_port() for _ in range(processes)]
    addresses = ";".join(f"127.0.0.1:{p}" for p in ports)
    cluster = [] if processes == 1 else ["-a", addresses]
    procs = [
        subprocess.Popen([*command, *(["-i", str(i)] if processes > 1 else []), *cluster], env=env, cwd=ROOT)
        for i in range(processes)
    ]
    for proc in procs:
        assert proc.wait(timeout=180) == 0


def _log(n: int) -> list[dict[str, Any]]:
    events = [valid_event(i, T0 + i * 20) for i in range(n)]
    return events + [events[i] for i in range(0, n, 10)]


def _stable(letter: dict[str, Any]) -> tuple[Any, ...]:
    return (letter["error"], letter["detail"], letter["source_topic"], letter["raw"])


def test_one_and_two_processes_give_the_same_outputs(broker: EmbeddedBroker) -> None:
    outputs = []
    for processes in (1, 2):
        config = make_config(broker, partitions=2)
        topics = config.kafka.topics
        produce_events(config, _log(3_000), [(topics[t], b"k", raw) for t, raw, _ in BAD_MESSAGES])
        env = _env(config)
        # The product's own command: dead letters.
        _run_processes([sys.executable, "-m", "channelflow.cli", "run", "--until-end"], processes, env)
        letters = sorted(_stable(d) for d in read_json(config, "dead_letters", expect=len(BAD_MESSAGES)))
        # The same flow with the probe domain: what survives dedupe, and the timers.
        config_probe = make_config(broker, partitions=2)
        produce_events(config_probe, _log(3_000))
        _run_processes(
            [sys.executable, "-m", "bytewax.run", "tests.flows.probe_flow:flow"],
            processes,
            _env(config_probe, PROBE_DELAY_MS="2000", CHANNELFLOW_TIME__ALLOWED_LATENESS="1s"),
        )
        probe = read_json(config_probe, "alerts")
        events = sorted(r["event_id"] for r in probe if r["kind"] == "event")
        timers = sorted(r["event_id"] for r in probe if r["kind"] == "timer")
        outputs.append((letters, events, timers))
    assert outputs[0] == outputs[1]
    letters, events, timers = outputs[0]
    assert len(letters) == len(BAD_MESSAGES)
    assert len(events) == 3_000  # every repeat dropped, in both runs
    assert len(timers) > 2_000


def committed_epoch(db_dir: Path) -> int:
    """The latest snapshot epoch committed in every recovery partition (-1: none yet)."""
    epochs = []
    for part in db_dir.glob("part-*.sqlite3"):
        with sqlite3.connect(f"file:{part}?mode=ro", uri=True) as db:
            epochs.append(db.execute("SELECT COALESCE(MAX(commit_epoch), -1) FROM commits").fetchone()[0])
    return min(epochs, default=-1)


def _scrape(port: int) -> dict[str, float]:
    return scrape(f"http://127.0.0.1:{port}/metrics")


def _lags(port: int) -> dict[str, float]:
    """Bytewax's consumer-lag gauge by input topic (partition 0: these tests' topics have one)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        text = response.read().decode()
    return {
        sample.labels["topic"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "bytewax_kafka_consumer_lag"
    }


def _wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError("condition not reached in time")


def test_sigterm_stops_cleanly_and_a_restart_resumes_from_recovery(broker: EmbeddedBroker, tmp_path: Path) -> None:
    config = make_config(broker, tmp_path, partitions=1)
    port = free_port()
    env = _env(config, CHANNELFLOW_METRICS__PORT=str(port))
    command = [sys.executable, "-m", "channelflow.cli", "run"]
    first = [valid_event(i, T0 + i * 20) for i in range(1_000)]
    produce_events(config, first)

    proc = subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _scrape(port).get("channelflow_events_total", 0) >= 1_000)
        # Every input partition's lag is reported (each worker reads its partitions through one
        # consumer, whose statistics cover them all) and falls to 0 once all is read.
        inputs = set(config.kafka.input_topics)
        _wait_for(lambda: (lags := _lags(port)).keys() == inputs and not any(lags.values()))
        # Wait for a snapshot taken after everything was read (a commit two epochs on).
        seen = committed_epoch(tmp_path / "recovery")
        _wait_for(lambda: committed_epoch(tmp_path / "recovery") >= seen + 2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "stopped by signal" in (proc.stderr.read() if proc.stderr else "")
    assert any((tmp_path / "recovery").glob("part-*"))

    # After the restart: new events, and repeats of events seen before the stop.
    second = [valid_event(i, T0 + i * 20) for i in range(1_000, 1_500)]
    repeats = first[-200:]
    produce_events(config, second + repeats)
    proc = subprocess.Popen(command, env=env, cwd=ROOT)
    try:
        _wait_for(lambda: _scrape(port).get("channelflow_events_total", 0) >= 700)
        after = _scrape(port)
        # Resumed from the snapshot: the first 1,000 are not read again...
        assert after["channelflow_events_total"] == 700
        # ...and the dedupe state came back: the repeats are known.
        assert after["channelflow_duplicates_total"] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
