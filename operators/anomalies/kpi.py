"""The shipped KPI detector: context surprise and range novelty, calibrated per series."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from river import base

from operators.anomalies.base import value_of
from operators.anomalies.calibration import ScoreCalibrator
from operators.anomalies.lagknn import LagKNN

__all__ = ["KpiDetector", "KpiParams"]


@dataclass(frozen=True)
class KpiParams:
    """The knobs of :class:`KpiDetector` (the shipped defaults were chosen on half of NAB dev).

    ``lags``: values per context window; ``sample_size``: past windows kept;
    ``neighbours``: nearest windows averaged; ``noise_half_life``: memory of the
    step size (points); ``short``: raw scores averaged before calibration;
    ``history_half_life``: memory of the score history (points); ``z_scale``: the
    calibrated ``z`` that scores 0.5; ``range_tolerance``: a value beyond the range
    seen so far by more than this fraction of it is novel; ``warmup``: points
    learned before anything scores.
    """

    lags: int = 3
    sample_size: int = 400
    neighbours: int = 1
    noise_half_life: float = 1000.0
    short: int = 3
    history_half_life: float = 5000.0
    z_scale: float = 3.0
    range_tolerance: float = 0.05
    warmup: int = 60


_BELOW_ONE = 1.0 - 1e-9


class KpiDetector(base.AnomalyDetector):
    """Anomaly score in [0, 1) for one KPI series, one value at a time.

    Three pieces, each scale-free: :class:`~operators.anomalies.lagknn.LagKNN` (how far
    the last few values are from every recent context, in units of the series' own
    step size), a :class:`~operators.anomalies.calibration.ScoreCalibrator` (that
    surprise against the series' own history of surprises), and range novelty (a
    value beyond the range seen so far by more than ``range_tolerance`` of it scores
    at least 0.99, further out higher, never 1.0). It learns every value, alarm or
    not; alarm suppression is :class:`~operators.anomalies.gate.AlarmGate`'s job.

    >>> import random
    >>> rng = random.Random(1)
    >>> detector = KpiDetector()
    >>> for i in range(500):
    ...     x = {"value": 100 + 10 * (i % 24 < 12) + rng.gauss(0, 1)}
    ...     _ = detector.score_one(x); detector.learn_one(x)
    >>> detector.score_one({"value": 101.0}) < 0.5
    True
    >>> 0.99 < detector.score_one({"value": 160.0}) < 1.0
    True
    """

    def __init__(self, params: KpiParams | None = None) -> None:
        self.params = params or KpiParams()
        p = self.params
        self.context = LagKNN(p.lags, p.sample_size, p.neighbours, p.noise_half_life)
        self.calibrator = ScoreCalibrator(p.short, p.history_half_life, p.z_scale)
        self.n = 0
        self.low = math.inf
        self.high = -math.inf

    @property
    def expected(self) -> float:
        return self.context.expected

    def _novelty(self, x: float) -> float:
        span = self.high - self.low
        if self.n < self.params.warmup or span <= 0:
            return 0.0
        excess = max(x - self.high, self.low - x) / span
        if excess <= self.params.range_tolerance:
            return 0.0
        return 1.0 - 0.01 / (1.0 + excess)

    def score_one(self, x: dict[Hashable, Any]) -> float:
        value = value_of(x)
        raw = self.context.score_one(x)
        if self.n < self.params.warmup:
            return 0.0
        score = max(self.calibrator.score(raw), self._novelty(value))
        # Extreme ratios (a span of denormals, say) round to 1.0 in floats: keep scores rankable.
        return min(score, _BELOW_ONE) if score == score else _BELOW_ONE

    def learn_one(self, x: dict[Hashable, Any]) -> None:
        value = value_of(x)
        self.calibrator.learn(self.context.score_one(x))
        self.context.learn_one(x)
        self.n += 1
        self.low = min(self.low, value)
        self.high = max(self.high, value)
