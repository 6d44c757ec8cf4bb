"""False alerts and outage delays of the seasonal count test on steady Poisson series, sparse to busy.

Each series is Poisson with ``rate`` counts per 15-minute window on average (1.6 times it from
09:00 to 21:00, 0.4 times at night), 60 days, 10 seeds: the alert episodes it starts after its
first 14 days (it has no anomaly, so each is false), and, on 5 seeds, how many windows an 8-hour
outage from 10:00 on day 50 takes to alert (None: not within it and the 2 hours after).

    .venv/bin/python bench/count_sparsity.py
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from operators.anomalies.counts import SeasonalCounts

WINDOW_MS = 900_000
THRESHOLD = 0.75  # the bundled anomaly.threshold
QUIET = 4  # the bundled anomaly.episode_quiet


def poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p >= limit:
        k, p = k + 1, p * rng.random()
    return k


def run(rate: float, days: int, seed: int, outage: range = range(0)) -> list[int]:
    """The windows where an alert episode starts."""
    rng, counts, starts, quiet = random.Random(seed), SeasonalCounts(), [], QUIET
    for i in range(days * 96):
        lam = rate * (1.6 if 36 <= i % 96 < 84 else 0.4)
        x = {"value": 0 if i in outage else poisson(rng, lam), "t": i * WINDOW_MS}
        if counts.score_one(x) >= THRESHOLD:
            if quiet >= QUIET:
                starts.append(i)
            quiet = 0
        else:
            quiet += 1
        counts.learn_one(x)
    return starts


def main() -> None:
    print("| counts per window | false alerts, days 14-60, 10 series | 8-hour outage: windows to alert, 5 series |")
    print("|---:|---:|---|")
    outage = range(50 * 96 + 40, 50 * 96 + 72)
    for rate in (0.05, 0.15, 0.5, 1.5, 5.0, 20.0):
        false = sum(len([i for i in run(rate, 60, seed) if i >= 14 * 96]) for seed in range(10))
        delays = []
        for seed in range(5):
            caught = [i - outage.start for i in run(rate, 60, seed, outage) if i >= outage.start]
            delays.append(caught[0] if caught and caught[0] < len(outage) + 8 else None)
        print(f"| {rate} | {false} | {delays} |")


if __name__ == "__main__":
    main()
