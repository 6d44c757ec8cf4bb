"""Context surprise: nearest neighbours over short lag windows."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable
from typing import Any

import numpy as np
from river import base

from operators.anomalies.base import value_of
from operators.anomalies.noise import NoiseScale

__all__ = ["LagKNN"]


class LagKNN(base.AnomalyDetector):
    """Distance from the last ``lags`` values to their nearest past lag windows, in noise units.

    Each point forms a lag window with the ``lags - 1`` points before it; the last
    ``sample_size`` windows are kept in a fixed-size ring (bounded memory, no
    randomness). The raw score is the root mean squared distance to the
    ``neighbours`` nearest kept windows, divided by ``sqrt(lags)`` and by the
    series' :class:`~operators.anomalies.noise.NoiseScale` (its own resolution or
    step size, never its level): a value is surprising when the shape it makes
    with its predecessors was not seen recently. ``expected`` is the value that
    followed the past context most like the current one.

    >>> from operators.anomalies.lagknn import LagKNN
    >>> knn = LagKNN(lags=3, sample_size=50)
    >>> for i in range(100):
    ...     knn.learn_one({"value": [1.0, 2.0, 3.0, 2.0][i % 4]})
    >>> knn.score_one({"value": 1.0}), knn.expected
    (0.0, 1.0)
    >>> round(knn.score_one({"value": 9.0}), 2)
    3.65
    """

    def __init__(self, lags: int = 3, sample_size: int = 400, neighbours: int = 1, noise_half_life: float = 1000.0) -> None:
        if lags < 1 or sample_size < neighbours or neighbours < 1:
            raise ValueError("need lags >= 1 and sample_size >= neighbours >= 1")
        self.lags = lags
        self.sample_size = sample_size
        self.neighbours = neighbours
        self.noise_half_life = noise_half_life
        self.noise = NoiseScale(noise_half_life)
        self._lag: deque[float] = deque(maxlen=lags)
        self._kept = np.zeros((sample_size, lags))
        self._filled = 0
        self._next = 0
        self._cache: tuple[float, float, float] | None = None  # (x, raw score, expected)
        self._expected = 0.0

    @property
    def expected(self) -> float:
        return self._expected

    def _window(self, x: float) -> np.ndarray | None:
        lag = self._lag
        if len(lag) < self.lags - 1:
            return None
        window = np.empty(self.lags)
        if self.lags > 1:
            window[:-1] = list(lag)[1 - self.lags :]
        window[-1] = x
        return window

    def _score(self, x: float) -> tuple[float, float]:
        cache = self._cache
        if cache is not None and cache[0] == x:
            return cache[1], cache[2]
        window = self._window(x)
        raw, expected = 0.0, self._expected
        if window is not None and self._filled >= self.neighbours:
            squares = (self._kept[: self._filled] - window) ** 2
            distances = squares.sum(axis=1)
            if self.lags > 1:
                context = distances - squares[:, -1]
                expected = float(self._kept[int(np.argmin(context)), -1])
            if self.neighbours == 1:
                nearest = float(distances.min())
            else:
                nearest = float(np.partition(distances, self.neighbours - 1)[: self.neighbours].mean())
            distance = math.sqrt(nearest / self.lags)
            scale = self.noise.get()
            raw = distance / scale if scale > 0 else (0.0 if distance == 0 else 1e6)
        self._cache = (x, raw, expected)
        self._expected = expected
        return raw, expected

    def score_one(self, x: dict[Hashable, Any]) -> float:
        return self._score(value_of(x))[0]

    def learn_one(self, x: dict[Hashable, Any]) -> None:
        value = value_of(x)
        self._score(value)
        self._cache = None
        window = self._window(value)
        if window is not None:
            self._kept[self._next] = window
            self._next = (self._next + 1) % self.sample_size
            self._filled = min(self._filled + 1, self.sample_size)
        self._lag.append(value)
        self.noise.update(value)
