"""The memory soak's warm-up horizon and its in-process state measure (``bench/soak.py``)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from channelflow.config import load_config, load_promotions

ROOT = Path(__file__).resolve().parents[2]
DAY_MS = 86_400_000


def _soak() -> object:
    spec = importlib.util.spec_from_file_location("soak", ROOT / "bench" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_warm_up_is_the_longest_state_horizon_of_the_config() -> None:
    config = load_config()
    horizons = _soak().state_horizons(config, load_promotions())  # type: ignore[attr-defined]
    churn = config.churn
    longest = max(horizons.values())
    labelled = churn.horizon_ms + churn.learn_every * churn.tick_ms
    assert horizons["churn snapshots waiting for their label (churn.horizon + churn.learn_every x churn.tick)"] \
        == labelled == 118 * DAY_MS
    # With the shipped config the churn model's window of labelled examples is the last to fill.
    assert churn.model == "windowed_logistic"
    assert longest == labelled + churn.window_ms == 208 * DAY_MS
    assert horizons["seen event ids (time.dedupe_horizon)"] == config.time.dedupe_horizon_ms
    assert horizons["open promotions (longest expiry or policy.attribution_window)"] == 30 * DAY_MS


def test_state_mode_measures_every_stage_by_event_time() -> None:
    done = subprocess.run([sys.executable, "bench/soak.py", "--state", "--minutes", "2", "--rate", "150",
                           "--state-days", "5"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    header, _, *rows = [line for line in done.stdout.splitlines() if line.startswith("|")]
    assert "promotion_gate (pickled KB)" in header and "Python heap (MB)" in header
    events = [int(row.split("|")[1].replace(",", "")) for row in rows]
    days = [int(row.split("|")[2]) for row in rows]
    assert events[-1] == 18_000 and len(rows) >= 3 and days == sorted(days) and days[-1] > 10
    assert all(len(row.split("|")) == len(header.split("|")) for row in rows)
