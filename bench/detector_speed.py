"""Rows per second per series of the anomaly detectors (score then learn, one series, one core).

Usage: ``python bench/detector_speed.py [--rows 50000]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from operators.anomalies.conversion import ConversionCusum
from operators.anomalies.counts import SeasonalCounts
from operators.anomalies.detectors import KpiParams, make_detector

QUARTER_MS = 15 * 60_000


def rate(detector: object, rows: list[dict[str, float]]) -> float:
    started = time.perf_counter()
    for x in rows:
        detector.score_one(x)  # type: ignore[attr-defined]
        detector.learn_one(x)  # type: ignore[attr-defined]
    return len(rows) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    n = parser.parse_args().rows
    counts = [{"value": float(i % 7), "t": float(i * QUARTER_MS)} for i in range(n)]
    values = [{"value": float((i * 37) % 101)} for i in range(n)]
    checkouts = [{"orders": float(i % 3), "checkouts": 5.0} for i in range(n)]
    print(f"| detector | rows/s per series ({n:,} rows) |\n|---|---:|")
    print(f"| kpi (context, NAB) | {rate(make_detector('kpi', KpiParams()), values):,.0f} |")
    print(f"| seasonal counts (store and channel KPIs) | {rate(SeasonalCounts(), counts):,.0f} |")
    print(f"| checkout conversion | {rate(ConversionCusum(), checkouts):,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
