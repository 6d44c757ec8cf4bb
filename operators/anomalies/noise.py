"""The noise scale of a series: its own resolution and spread, never its level."""

from __future__ import annotations

import math

__all__ = ["NoiseScale"]


class NoiseScale:
    """Typical size of one step of a series.

    The scale is the larger of the exponentially weighted mean of ``|x_t - x_{t-1}|``
    (half-life ``half_life`` steps; a plain mean until there are that many) and the series'
    *resolution*, the smallest non-zero step seen (1 for counts, 0.01 for a price
    in cents...). It does not depend on the level: a series around 10,000 that moves
    by 5 has the scale of one around 10 that moves by 5. Until the series has moved
    at all the scale is 0 (any change is then infinitely surprising).

    >>> noise = NoiseScale(half_life=100)
    >>> for x in [10, 12, 10, 12, 10]:
    ...     noise.update(x)
    >>> noise.get(), noise.resolution
    (2.0, 2.0)
    >>> shifted = NoiseScale(half_life=100)
    >>> for x in [10_010, 10_012, 10_010, 10_012, 10_010]:
    ...     shifted.update(x)
    >>> shifted.get()
    2.0
    """

    __slots__ = ("_alpha", "_mean", "_n", "_previous", "resolution")

    def __init__(self, half_life: float = 1000.0) -> None:
        if half_life <= 0:
            raise ValueError(f"half_life must be > 0, got {half_life}")
        self._alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self._mean = 0.0
        self._n = 0
        self._previous: float | None = None
        self.resolution = math.inf

    def update(self, x: float) -> None:
        x = float(x)
        previous = self._previous
        self._previous = x
        if previous is None:
            return
        step = abs(x - previous)
        if 0.0 < step < self.resolution:
            self.resolution = step
        self._n += 1
        self._mean += max(self._alpha, 1.0 / self._n) * (step - self._mean)

    def get(self) -> float:
        resolution = self.resolution if self.resolution < math.inf else 0.0
        return max(self._mean, resolution)
