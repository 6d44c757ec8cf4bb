"""Pacing: emit events at a target rate, or with event time running X times the wall clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

Clock = Callable[[], float]
Sleep = Callable[[float], None]


def paced_by_rate(
    events: Iterable[dict[str, Any]], rate: float, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
) -> Iterator[dict[str, Any]]:
    """At most ``rate`` events per wall-clock second."""
    started = clock()
    for count, event in enumerate(events):
        ahead = count / rate - (clock() - started)
        if ahead > 0:
            sleep(ahead)
        yield event


def paced_by_speed(
    events: Iterable[dict[str, Any]], speed: float, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
) -> Iterator[dict[str, Any]]:
    """Each event when ``(ts - first ts) / speed`` wall-clock seconds have passed: ``speed`` simulated s per s."""
    started = clock()
    first_ts: int | None = None
    for event in events:
        ts = event["ts"]
        if first_ts is None:
            first_ts = ts
        ahead = (ts - first_ts) / 1000 / speed - (clock() - started)
        if ahead > 0:
            sleep(ahead)
        yield event
