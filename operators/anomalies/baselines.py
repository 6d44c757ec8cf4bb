"""River's own detectors behind the same calibration, for comparison with the KPI detector."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from river import anomaly, base, preprocessing, stats

from operators.anomalies.base import value_of
from operators.anomalies.calibration import ScoreCalibrator

__all__ = ["CalibratedRiver"]


class CalibratedRiver(base.AnomalyDetector):
    """River's ``StandardAbsoluteDeviation`` (``"sad"``) or ``HalfSpaceTrees`` on min-max scaled values (``"hst"``),
    its raw score calibrated by :class:`~operators.anomalies.calibration.ScoreCalibrator`.

    >>> detector = CalibratedRiver("sad", warmup=5)
    >>> for v in [10.0, 11.0, 9.0, 10.0, 11.0, 9.0] * 5:
    ...     detector.learn_one({"value": v})
    >>> detector.score_one({"value": 10.0}) < detector.score_one({"value": 30.0})
    True
    """

    def __init__(self, kind: str = "sad", warmup: int = 60, seed: int = 42) -> None:
        if kind not in ("sad", "hst"):
            raise ValueError(f"kind: expected 'sad' or 'hst', got {kind!r}")
        self.kind = kind
        self.warmup = warmup
        self.sad = anomaly.StandardAbsoluteDeviation()
        self.hst = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(n_trees=25, height=8, window_size=250,
                                                                         seed=seed)
        self.calibrator = ScoreCalibrator()
        self.mean = stats.EWMean(fading_factor=0.05)
        self.n = 0

    @property
    def expected(self) -> float:
        return self.mean.get()

    def _raw(self, x: dict[Hashable, Any]) -> float:
        if self.kind == "sad":
            return float(self.sad.score_one(None, value_of(x))) if self.n else 0.0
        return float(self.hst.score_one({"value": value_of(x)}))

    def score_one(self, x: dict[Hashable, Any]) -> float:
        return self.calibrator.score(self._raw(x)) if self.n >= self.warmup else 0.0

    def learn_one(self, x: dict[Hashable, Any]) -> None:
        value = value_of(x)
        self.calibrator.learn(self._raw(x))
        if self.kind == "sad":
            self.sad.learn_one(None, value)
        else:
            self.hst.learn_one({"value": value})
        self.mean.update(value)
        self.n += 1
