"""Base protocols of the window detectors.

A detector is a River anomaly detector (``river.base.AnomalyDetector``:
``learn_one(x)`` and ``score_one(x)`` on dicts), so it composes with River's
tools (``river.compose.Pipeline``, ``river.anomaly.ThresholdFilter`` ...). A
KPI series gives one value per window, as ``{"value": x}`` (or any dict with
one number). A :class:`KpiScorer` also says what it expected, for the alert
record.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["KpiScorer", "value_of"]


@runtime_checkable
class KpiScorer(Protocol):
    """What the anomaly domain needs of a window detector."""

    @property
    def expected(self) -> float:
        """The value the detector expected at the last scored or learned point."""
        ...

    def score_one(self, x: dict[Hashable, Any]) -> float:
        """How unusual ``x`` is, in [0, 1), before learning it."""
        ...

    def learn_one(self, x: dict[Hashable, Any]) -> None:
        """Learn ``x``; always called, alarm or not."""
        ...


def value_of(x: Mapping[Hashable, Any]) -> float:
    """The series value of ``x``: its ``value`` key, or its only entry.

    >>> value_of({"value": 3}), value_of({"orders": 2.5})
    (3.0, 2.5)
    """
    if "value" in x:
        return float(x["value"])
    if len(x) != 1:
        raise ValueError(f"expected a 'value' key or exactly one entry, got {sorted(map(str, x))}")
    return float(next(iter(x.values())))
