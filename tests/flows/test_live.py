"""Live input: inventory publishes ``time.live_lateness`` behind the clock, not ``allowed_lateness``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from channelflow.broker import EmbeddedBroker, free_port
from channelflow.kafka_io import consume_all
from tests.conftest import make_config
from tests.flow_harness import produce_events, valid_event
from tests.flows.test_cluster import ROOT, _env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_live_stock_changes_are_published_without_waiting_for_allowed_lateness(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    config = make_config(broker, tmp_path, partitions=2)
    # An hour of allowed lateness: had inventory waited for it, nothing would come within the test.
    # The partitions that get no event count as quiet after the idle timeout.
    env = _env(config, CHANNELFLOW_METRICS__PORT=str(free_port()), CHANNELFLOW_TIME__ALLOWED_LATENESS="1h",
               CHANNELFLOW_TIME__LIVE_LATENESS="0s", CHANNELFLOW_TIME__IDLE_TIMEOUT="5s")  # fmt: skip
    flow = subprocess.Popen([sys.executable, "-m", "channelflow.cli", "run"], env=env, cwd=ROOT)
    try:
        now = time.time_ns() // 1_000_000
        receipts = [valid_event(i, now) for i in (2, 6, 10, 14)]  # stock received at W001, one SKU each
        assert {event["type"] for event in receipts} == {"stock_received"}
        produce_events(config, receipts)
        # Each receipt: its stock record, then back_in_stock and low_stock alerts (safety stock 5).
        records = consume_all(config.kafka.bootstrap, config.kafka.topics["inventory_updates"], expect=12, timeout=180)
        stock = [u for u in (orjson.loads(value) for _, value in records) if u["record"] == "stock"]
        assert sorted(u["cause_event_id"] for u in stock) == sorted(e["event_id"] for e in receipts)
        assert all((u["location_id"], u["on_hand"]) == ("W001", 10) for u in stock)
    finally:
        flow.send_signal(signal.SIGTERM)
        try:
            flow.wait(60)
        except subprocess.TimeoutExpired:
            flow.kill()
