"""Price checks through the real broker and the real flow: ``anomaly.unpriced_skus``, also across a restart."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from channelflow.broker import EmbeddedBroker
from tests.conftest import make_config
from tests.flow_harness import closing_events, produce_events, read_json, run_to_end
from tests.flows.test_cluster import _env, _run_processes

pytestmark = pytest.mark.integration

T0 = 1_767_600_000_000  # 2026-01-05T08:00:00Z
HOUR_MS = 3_600_000
RUN = [sys.executable, "-m", "channelflow.cli", "run", "--until-end"]


def _till(n: int, ts: int, mug: float, postage: float) -> dict[str, Any]:
    """A till sale of a mug and its postage line."""
    lines = [{"sku": "MUG", "qty": 1, "unit_price": mug}, {"sku": "POST", "qty": 1, "unit_price": postage}]
    return {"event_id": f"sale-{n}", "type": "sale", "ts": ts, "store_id": "S001", "receipt_id": f"r{n}",
            "loyalty_id": None, "lines": lines, "total": round(mug + postage, 2)}  # fmt: skip


def _log(first: int, start: int) -> list[dict[str, Any]]:
    """Eight sales at the usual prices an hour apart, then one with both prices ten times over."""
    sales = [_till(first + n, start + n * HOUR_MS, 9.5, 3.0) for n in range(8)]
    return [*sales, _till(first + 8, start + 8 * HOUR_MS, 95.0, 30.0)]


def _priced_alerts(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((r["sku"], r["cause_event_id"]) for r in records if "sku" in r)


def test_unpriced_skus_are_not_checked_and_a_restart_takes_todays_list(broker: EmbeddedBroker, tmp_path: Path) -> None:
    day = T0, T0 + 24 * HOUR_MS
    # Shipped config: both lines are price-checked, both outliers alert.
    config = make_config(broker, partitions=1)
    produce_events(config, [*_log(0, day[0]), *closing_events(day[0] + 10 * HOUR_MS)])
    run_to_end(config)
    assert _priced_alerts(read_json(config, "alerts")) == [("MUG", "sale-8"), ("POST", "sale-8")]

    # Postage named unpriced (a `channelflow run` with recovery): only the mug alerts.
    config = make_config(broker, tmp_path, partitions=1)
    produce_events(config, [*_log(0, day[0]), *closing_events(day[0] + 10 * HOUR_MS)])
    _run_processes(RUN, 1, _env(config, CHANNELFLOW_ANOMALY__UNPRICED_SKUS='["POST"]'))
    assert _priced_alerts(read_json(config, "alerts")) == [("MUG", "sale-8")]

    # Restarted from its recovery directory with the shipped list (none): postage is checked again,
    # from the state learnt while it was not (no usual price yet: a warm-up, then its outlier alerts).
    produce_events(config, [*_log(100, day[1]), *closing_events(day[1] + 10 * HOUR_MS)])
    _run_processes(RUN, 1, _env(config))
    assert _priced_alerts(read_json(config, "alerts")) == [("MUG", "sale-108"), ("MUG", "sale-8"), ("POST", "sale-108")]
