"""The span benchmark (``bench/span.py``): the same events over longer event-time spans."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_fewer_customers_spread_the_same_events_over_more_days() -> None:
    done = subprocess.run([sys.executable, "bench/span.py", "--events", "6000", "--repeat", "1",
                           "--customers", "2000,100"], cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    header, _, *rows = [line for line in done.stdout.splitlines() if line.startswith("|")]
    assert "CPU µs per event (marginal)" in header
    cells = [[cell.strip().replace(",", "") for cell in row.split("|")[1:-1]] for row in rows]
    assert [int(c[0]) for c in cells] == [2000, 100]
    dense, sparse = (float(c[1]) for c in cells)
    assert sparse > 5 * dense  # the same 6,000 events, a twentieth of the customers
    assert all(float(c[3]) > 0 and int(c[5]) > 0 for c in cells)
    assert float(cells[0][4]) == 1.0  # the first density is the baseline of the ratio
