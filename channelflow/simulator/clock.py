"""Local time: store opening hours and the daily rhythm of online traffic, in epoch ms."""

from __future__ import annotations

import math
import random
from bisect import bisect
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from itertools import accumulate
from zoneinfo import ZoneInfo

from channelflow.simulator.settings import Location
from operators.time.units import HOUR_MS

#: Relative online traffic by local hour of day: quiet nights, an evening peak.
ONLINE_BY_LOCAL_HOUR = (
    0.35, 0.2, 0.12, 0.1, 0.1, 0.15, 0.35, 0.7, 1.0, 1.2, 1.3, 1.4,
    1.5, 1.4, 1.3, 1.3, 1.4, 1.6, 1.9, 2.2, 2.3, 2.0, 1.4, 0.8,
)  # fmt: skip

OpeningWindow = tuple[int, int, int, int]
"""(from, to, opens, closes) in epoch ms: the part ``from..to`` of one opening ``opens..closes``."""


def _epoch_ms(day: date, at: time, zone: ZoneInfo) -> int:
    return int(datetime.combine(day, at, zone).timestamp() * 1000)


@lru_cache(maxsize=4096)
def opening_windows(store: Location, start_ms: int, end_ms: int) -> tuple[OpeningWindow, ...]:
    """The store's opening hours that fall inside ``start_ms..end_ms``, in local time rules."""
    assert store.opens is not None and store.closes is not None
    zone = ZoneInfo(store.timezone)
    first = datetime.fromtimestamp(start_ms / 1000, zone).date() - timedelta(days=1)
    windows: list[OpeningWindow] = []
    for offset in range(3 + (end_ms - start_ms) // 86_400_000):
        day = first + timedelta(days=offset)
        opens = _epoch_ms(day, store.opens, zone)
        closes_day = day if store.closes > store.opens else day + timedelta(days=1)
        closes = _epoch_ms(closes_day, store.closes, zone)
        lo, hi = max(opens, start_ms), min(closes, end_ms)
        if lo < hi:
            windows.append((lo, hi, opens, closes))
    return tuple(windows)


def store_time(rng: random.Random, windows: tuple[OpeningWindow, ...]) -> int | None:
    """A visit time inside the windows, busiest mid-opening; None if the store is closed."""
    total = sum(hi - lo for lo, hi, _, _ in windows)
    if total <= 0:
        return None
    while True:
        pick = rng.randrange(total)
        for lo, hi, opens, closes in windows:
            if pick < hi - lo:
                ts = lo + pick
                progress = (ts - opens) / (closes - opens)
                if rng.random() < 0.55 + 0.45 * math.sin(math.pi * progress):
                    return ts
                break
            pick -= hi - lo


@lru_cache(maxsize=1024)
def online_hour_weights(timezone: str, start_ms: int) -> tuple[float, ...]:
    """Cumulative online traffic weights of the 24 hours from ``start_ms`` in ``timezone``."""
    local = datetime.fromtimestamp(start_ms / 1000, ZoneInfo(timezone))
    first_hour = local.hour
    return tuple(accumulate(ONLINE_BY_LOCAL_HOUR[(first_hour + h) % 24] for h in range(24)))


def online_time(rng: random.Random, timezone: str, start_ms: int) -> int:
    """A session start in the 24 hours from ``start_ms``, following the local daily rhythm."""
    cumulative = online_hour_weights(timezone, start_ms)
    hour = min(bisect(cumulative, rng.random() * cumulative[-1]), 23)
    return start_ms + hour * HOUR_MS + rng.randrange(HOUR_MS)
