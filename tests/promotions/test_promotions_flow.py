"""Promotions end to end: a simulated log through Kafka and the real flow, against the same stages in-process.

The reference is every domain stage of the flow (``domain_specs``) run by
``flows.local.LocalFlow`` on the de-duplicated events. The Kafka flow must
publish exactly its ``promotions`` records (and its ``promotion_decisions``): in one process, in two, across a
SIGTERM and a restart from recovery (repeats allowed, never a different
record under one ``promotion_id``), and with any input batch size.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from channelflow.broker import EmbeddedBroker, free_port
from channelflow.config import Config, load_promotions
from channelflow.simulator import SimulationSettings, simulate
from flows.main import domain_specs
from tests.conftest import make_config
from tests.customers.test_customers_flow import canonical
from tests.flow_harness import (
    closing_events,
    produce_events,
    read_json,
    records_of,
    run_local,
    run_to_end,
)
from tests.flows.test_cluster import ROOT, _env, _run_processes, _scrape, _wait_for
from tests.inventory.test_inventory_flow import HOUR_MS

pytestmark = pytest.mark.integration

#: About 5,300 events over 20 days: cart reminders, birthdays and browse nudges fire.
SIMULATION = SimulationSettings(seed=3, customers=300, days=20, anomalies=False)
SPREAD = 32  # closing events per input topic, so every partition gets one


@dataclass(frozen=True)
class Scenario:
    """The simulated log, the event time that closes it, and the promotions LocalFlow gives."""

    log: list[dict[str, Any]]
    end: int
    expected: list[dict[str, Any]]
    decisions: list[dict[str, Any]]

    def closed(self) -> list[dict[str, Any]]:
        return self.log + closing_events(self.end, spread=SPREAD)


def reference(config: Config, log: list[dict[str, Any]], watermark: int) -> tuple[list[dict[str, Any]], ...]:
    """The promotions and decisions of every domain stage run in-process on the de-duplicated ``log``."""
    flow = run_local(domain_specs(config, load_promotions()), config.flow.shards, log, watermark)
    return records_of(flow, "promotions"), records_of(flow, "promotion_decisions")


@pytest.fixture(scope="module")
def scenario(broker: EmbeddedBroker) -> Scenario:
    config = make_config(broker, partitions=2)
    log = list(simulate(SIMULATION))
    end = log[-1]["ts"] + 2 * HOUR_MS
    expected, decisions = reference(config, log + closing_events(end, spread=SPREAD),
                                    end - config.time.allowed_lateness_ms)
    return Scenario(log, end, expected, decisions)


def by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Records by ``promotion_id``; fails if one id ever carries two different records."""
    found: dict[str, dict[str, Any]] = {}
    for record in records:
        seen = found.setdefault(record["promotion_id"], record)
        assert seen == record, (seen, record)
    return found


def test_simulated_log_gives_the_local_flows_promotions(broker: EmbeddedBroker, scenario: Scenario) -> None:
    config = make_config(broker, partitions=2)
    produce_events(config, scenario.closed())
    run_to_end(config)

    records = read_json(config, "promotions")
    assert canonical(records) == canonical(scenario.expected)
    assert len(by_id(records)) == len(records)  # no repeats without a restart
    assert canonical(read_json(config, "promotion_decisions")) == canonical(scenario.decisions)
    assert any(d["outcome"].startswith("suppressed_") for d in scenario.decisions)
    rules = {r["rule"] for r in scenario.expected}
    assert {"cart_reminder", "birthday", "browse_nudge"} <= rules, rules


def _cli_run(config: Config, processes: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    _run_processes([sys.executable, "-m", "channelflow.cli", "run", "--until-end"], processes, _env(config))
    return read_json(config, "promotions"), read_json(config, "promotion_decisions")


@pytest.mark.slow
def test_one_and_two_processes_publish_the_same_promotions(broker: EmbeddedBroker, scenario: Scenario) -> None:
    published, decided = {}, {}
    for processes in (1, 2):
        config = make_config(broker, partitions=2)
        produce_events(config, scenario.closed())
        published[processes], decided[processes] = _cli_run(config, processes)
    assert sorted(by_id(published[1])) == sorted(by_id(published[2]))
    assert canonical(published[1]) == canonical(published[2]) == canonical(scenario.expected)
    assert canonical(decided[1]) == canonical(decided[2]) == canonical(scenario.decisions)


@pytest.mark.slow
def test_sigterm_and_restart_mid_log_give_the_same_promotions(
    broker: EmbeddedBroker, scenario: Scenario, tmp_path: Path
) -> None:
    config = make_config(broker, tmp_path, partitions=2)
    port = free_port()
    env = _env(config, CHANNELFLOW_METRICS__PORT=str(port))
    half = len(scenario.log) // 2
    first, rest = scenario.log[:half], scenario.log[half:]
    produce_events(config, first)

    proc = subprocess.Popen([sys.executable, "-m", "channelflow.cli", "run"], env=env, cwd=ROOT)
    try:
        seen = len({body["event_id"] for body in first})
        _wait_for(lambda: _scrape(port).get("channelflow_events_total", 0) >= seen, timeout=120)
        proc.send_signal(signal.SIGTERM)  # a clean stop closes the last epoch: a snapshot covers the first half
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    before = read_json(config, "promotions")
    assert before, "the first half alone publishes promotions"

    produce_events(config, rest + closing_events(scenario.end, spread=SPREAD))
    restarted = subprocess.run(
        [sys.executable, "-m", "channelflow.cli", "run", "--until-end"], env=env, cwd=ROOT, timeout=180
    )
    assert restarted.returncode == 0
    records = read_json(config, "promotions")
    distinct = by_id(records)
    assert canonical(list(distinct.values())) == canonical(scenario.expected)
    assert len(before) < len(records)


@pytest.mark.slow
def test_input_batch_size_does_not_change_the_promotions(broker: EmbeddedBroker, scenario: Scenario) -> None:
    published = {}
    for batch in ("7", "1000"):
        config = make_config(broker, partitions=2, KAFKA__BATCH_SIZE=batch)
        assert config.kafka.batch_size == int(batch)
        produce_events(config, scenario.closed())
        run_to_end(config)
        published[batch] = read_json(config, "promotions")
    assert canonical(published["7"]) == canonical(published["1000"]) == canonical(scenario.expected)


@pytest.mark.slow
def test_a_rule_disabled_in_the_rules_file_between_runs_stops_firing_after_the_restart(
    broker: EmbeddedBroker, scenario: Scenario, tmp_path: Path
) -> None:
    """The rules file is config, not state: a restart from recovery decides by the file as it is now."""
    config = make_config(broker, tmp_path, partitions=2)
    half = len(scenario.log) // 2
    first, rest = scenario.log[:half], scenario.log[half:]
    # Not vacuous: without the edit, cart reminders caused in the second half would be sent.
    cause_ids = {body["event_id"] for body in rest}
    assert any(r["rule"] == "cart_reminder" and r["cause_event_id"] in cause_ids for r in scenario.expected)

    produce_events(config, first)
    run = [sys.executable, "-m", "channelflow.cli", "run", "--until-end"]
    assert subprocess.run(run, env=_env(config), cwd=ROOT, timeout=180).returncode == 0
    before = {r["promotion_id"] for r in read_json(config, "promotions")}
    assert before, "the first run publishes promotions"

    rules = Path(ROOT, "config", "promotions.toml").read_text()
    edited = tmp_path / "promotions.toml"
    edited.write_text(rules.replace('[rules.cart_reminder]\ntrigger = "cart_abandoned"\nenabled = true',
                                    '[rules.cart_reminder]\ntrigger = "cart_abandoned"\nenabled = false'))
    assert edited.read_text() != rules
    produce_events(config, rest + closing_events(scenario.end, spread=SPREAD))
    env = _env(config, CHANNELFLOW_PROMOTIONS=str(edited))
    assert subprocess.run(run, env=env, cwd=ROOT, timeout=180).returncode == 0

    after = [r for r in read_json(config, "promotions") if r["promotion_id"] not in before]
    assert after, "the second run publishes promotions of the other rules"
    assert {r["rule"] for r in after} & {"birthday", "browse_nudge"}
    assert [r for r in after if r["rule"] == "cart_reminder"] == []
    sent_after = [d for d in read_json(config, "promotion_decisions")
                  if d["rule"] == "cart_reminder" and d["outcome"] == "sent" and d["cause_event_id"] in cause_ids]
    assert sent_after == []
