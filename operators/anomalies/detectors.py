"""Anomaly detectors for one KPI series, one value per closed window.

Every detector has the same small API: ``score_one(x)`` (how unusual the
window value ``x`` is, before learning it), ``learn_one(x)``, ``expected``
(what it expected), ``direction(x)`` (``spike`` or ``drop``). They are
compared on the simulator's injected anomalies by ``bench/detection_quality.py``
(see ``docs/anomalies.md``):

* :class:`CusumDetector` (chosen): exponentially weighted mean and variance
  (``river.stats.EWMean``/``EWVar``), a two-sided CUSUM of the standardised
  values, so a sustained small drop (a store's tills silent for an hour) adds
  up, while one odd window does not;
* :class:`ZScoreDetector`: the same statistics, one window at a time;
* :class:`GaussianDetector`: ``river.anomaly.GaussianScorer`` with a zero-variance guard;
* :class:`HalfSpaceTreesDetector`: ``river.anomaly.HalfSpaceTrees`` on min-max scaled values.

Guards (River 0.26 facts in the design notes): a variance floor (a count's
noise is at least Poisson, ``sqrt(mean)``; money and ratios get a floor relative
to the mean), so a constant stretch does not make every change infinitely
surprising; scaling before Half-Space Trees; and :class:`AlarmGate`, which
raises an alarm only when the score crosses the threshold *and* beats the
previous ``k`` scores, and holds one alarm per episode.

>>> detector = CusumDetector(half_life=20, warmup=5, drift=0.5)
>>> for value in [10, 11, 9, 10, 12, 10, 9, 11, 10, 10]:
...     _ = detector.score_one(value); detector.learn_one(value)
>>> round(detector.expected, 1)
10.1
>>> scores = []
>>> for value in [0, 0, 0]:
...     scores.append(detector.score_one(value)); detector.learn_one(value)
>>> scores[0] < scores[1] < scores[2], detector.direction(0)
(True, 'drop')
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from river import anomaly, preprocessing, stats

__all__ = [
    "DETECTORS",
    "AlarmGate",
    "CusumDetector",
    "Detector",
    "DetectorParams",
    "GaussianDetector",
    "HalfSpaceTreesDetector",
    "ZScoreDetector",
    "make_detector",
]


class Detector(Protocol):
    """What the anomaly domain needs of a detector."""

    @property
    def expected(self) -> float: ...

    def score_one(self, x: float) -> float: ...

    def learn_one(self, x: float) -> None: ...

    def direction(self, x: float) -> str: ...

    def ready(self) -> bool: ...

    def reset(self) -> None: ...


def _alpha(half_life: float) -> float:
    """EW weight of the newest value for a half-life in windows."""
    return 1.0 - 0.5 ** (1.0 / half_life)


class _EWStats:
    """EW mean and variance (River) with a noise floor.

    Counts are at least Poisson (``sd >= sqrt(mean)``); money is at least
    compound Poisson in units of the typical non-zero value (``sd >=
    sqrt(mean * typical)``: one large basket in a quiet minute is not a
    spike); and never below ``rel_floor * mean``.
    """

    def __init__(self, half_life: float, warmup: int, count_like: bool, rel_floor: float) -> None:
        fading = _alpha(half_life)
        self.mean = stats.EWMean(fading_factor=fading)
        self.var = stats.EWVar(fading_factor=fading)
        self.typical = stats.EWMean(fading_factor=fading)  # of the non-zero values
        self.warmup = warmup
        self.count_like = count_like
        self.rel_floor = rel_floor
        self.n = 0

    def learn(self, x: float) -> None:
        self.mean.update(x)
        self.var.update(x)
        if x:
            self.typical.update(abs(x))
        self.n += 1

    @property
    def expected(self) -> float:
        return self.mean.get() if self.n else 0.0

    def sd(self) -> float:
        mean = max(self.expected, 0.0)
        if self.count_like:
            floor = math.sqrt(max(mean, 0.25))
        else:
            floor = max(math.sqrt(mean * self.typical.get()), self.rel_floor * mean, 1e-3)
        return max(math.sqrt(max(self.var.get(), 0.0)), floor)

    def z(self, x: float) -> float:
        return (x - self.expected) / self.sd()

    def unit(self) -> float:
        """What one Poisson "event" is worth: 1 for counts, the typical non-zero value for money (0: unknown)."""
        if self.count_like:
            return 1.0
        return self.typical.get() if self.rel_floor <= 0 else 0.0


@dataclass(frozen=True)
class DetectorParams:
    """Knobs shared by the detectors (``[anomaly]`` config keys of the same names).

    ``half_life`` (windows) of the EW statistics; ``warmup`` windows learned
    before scoring; ``drift`` (CUSUM slack per window, in standard deviations);
    ``count_like``: the series counts things (Poisson noise floor);
    ``rel_floor``: standard deviation floor relative to the mean otherwise.
    """

    half_life: float = 60.0
    warmup: int = 30
    drift: float = 0.5
    count_like: bool = True
    rel_floor: float = 0.1
    seed: int = 42


class CusumDetector:
    """Two-sided CUSUM; the score is the larger side (evidence in nats for counts).

    A count series (Poisson, rate ``expected`` per window) adds the
    log-likelihood ratio of "the rate is ``rise`` times higher" (or ``fall``
    times lower) to each side; a money series (``rel_floor <= 0``) does the same
    in units of its typical non-zero value (compound Poisson); other series
    (ratios) add EW-standardised values minus ``drift``. Values are learned whatever the score; the owner stops learning
    during an alarm (see :class:`AlarmGate`), so an anomaly does not become the norm.
    """

    def __init__(self, half_life: float = 60.0, warmup: int = 30, drift: float = 0.5,
                 count_like: bool = True, rel_floor: float = 0.1, rise: float = 3.0, fall: float = 0.25) -> None:
        self.stats = _EWStats(half_life, warmup, count_like, rel_floor)
        self.drift = drift
        self.log_rise, self.rise = math.log(rise), rise
        self.log_fall, self.fall = math.log(fall), fall
        self.high = 0.0
        self.low = 0.0

    @property
    def expected(self) -> float:
        return self.stats.expected

    def ready(self) -> bool:
        return self.stats.n >= self.stats.warmup

    def _sides(self, x: float) -> tuple[float, float]:
        unit = self.stats.unit()
        if unit:
            x, rate = x / unit, max(self.stats.expected / unit, 1e-3)
            up = x * self.log_rise - rate * (self.rise - 1.0)
            down = x * self.log_fall - rate * (self.fall - 1.0)
            return max(0.0, self.high + up), max(0.0, self.low + down)
        z = self.stats.z(x)
        return max(0.0, self.high + z - self.drift), max(0.0, self.low - z - self.drift)

    def score_one(self, x: float) -> float:
        if not self.ready():
            return 0.0
        return max(self._sides(x))

    def direction(self, x: float) -> str:
        high, low = self._sides(x)
        return "spike" if high >= low else "drop"

    def learn_one(self, x: float) -> None:
        if self.ready():
            self.high, self.low = self._sides(x)
        self.stats.learn(x)

    def reset(self) -> None:
        """Forget the accumulated evidence (after an alarm)."""
        self.high = self.low = 0.0


class ZScoreDetector:
    """|x - EW mean| / EW standard deviation (with the noise floor), one window at a time."""

    def __init__(self, half_life: float = 60.0, warmup: int = 30, count_like: bool = True,
                 rel_floor: float = 0.1) -> None:
        self.stats = _EWStats(half_life, warmup, count_like, rel_floor)

    @property
    def expected(self) -> float:
        return self.stats.expected

    def ready(self) -> bool:
        return self.stats.n >= self.stats.warmup

    def score_one(self, x: float) -> float:
        return abs(self.stats.z(x)) if self.ready() else 0.0

    def direction(self, x: float) -> str:
        return "spike" if x >= self.expected else "drop"

    def learn_one(self, x: float) -> None:
        self.stats.learn(x)

    def reset(self) -> None:
        """Nothing accumulates between windows."""


class GaussianDetector:
    """``river.anomaly.GaussianScorer`` (score = 2|CDF(x) - 0.5|, in [0, 1]), guarded.

    GaussianScorer scores every value of a constant stretch as 1.0: while the
    learned variance is zero, a value equal to the mean scores 0. Its windowed
    variance can drift below zero and raise ``TypeError``: treated the same way.
    """

    def __init__(self, warmup: int = 30, window_size: int | None = None) -> None:
        self.scorer = anomaly.GaussianScorer(window_size=window_size, grace_period=warmup)
        self.mean = stats.Mean()
        self.var = stats.Var()
        self.warmup = warmup

    @property
    def expected(self) -> float:
        return self.mean.get()

    def ready(self) -> bool:
        return self.mean.n >= self.warmup

    def score_one(self, x: float) -> float:
        if not self.ready():
            return 0.0
        if self.var.get() <= 0.0:
            return 0.0 if x == self.expected else 1.0
        try:
            return float(self.scorer.score_one(None, x))
        except (TypeError, ValueError, ZeroDivisionError):
            # The windowed scorer's rolling variance can drift below zero (a complex sigma).
            return 0.0 if x == self.expected else 1.0

    def direction(self, x: float) -> str:
        return "spike" if x >= self.expected else "drop"

    def learn_one(self, x: float) -> None:
        self.scorer.learn_one(None, x)
        self.mean.update(x)
        self.var.update(x)

    def reset(self) -> None:
        """Nothing accumulates between windows."""


class HalfSpaceTreesDetector:
    """``river.anomaly.HalfSpaceTrees`` on ``{value, change}`` scaled to [0, 1] by ``MinMaxScaler``.

    HST assumes features in [0, 1]; an unscaled out-of-range value scores as normal.
    """

    def __init__(self, warmup: int = 30, window_size: int = 60, seed: int = 42) -> None:
        self.scaler = preprocessing.MinMaxScaler()
        self.trees = anomaly.HalfSpaceTrees(n_trees=10, height=6, window_size=window_size, seed=seed)
        self.mean = stats.Mean()
        self.previous = 0.0
        self.warmup = max(warmup, window_size)

    @property
    def expected(self) -> float:
        return self.mean.get()

    def ready(self) -> bool:
        return self.mean.n >= self.warmup

    def _features(self, x: float) -> dict[str, float]:
        raw = {"value": x, "change": x - self.previous}
        scaled = self.scaler.transform_one(raw)
        return {k: min(1.0, max(0.0, v)) for k, v in scaled.items()}

    def score_one(self, x: float) -> float:
        return float(self.trees.score_one(self._features(x))) if self.ready() else 0.0

    def direction(self, x: float) -> str:
        return "spike" if x >= self.expected else "drop"

    def learn_one(self, x: float) -> None:
        raw = {"value": x, "change": x - self.previous}
        self.scaler.learn_one(raw)
        self.trees.learn_one(self._features(x))
        self.mean.update(x)
        self.previous = x

    def reset(self) -> None:
        """Nothing accumulates between windows."""


#: Detector names accepted by ``anomaly.detector`` and the threshold each is usually run with.
DETECTORS = {"cusum": 12.0, "zscore": 5.0, "gaussian": 0.9999, "hst": 0.95}


def make_detector(name: str, params: DetectorParams) -> Detector:
    """A fresh detector ``name`` (one of :data:`DETECTORS`) with ``params``."""
    if name == "cusum":
        return CusumDetector(params.half_life, params.warmup, params.drift, params.count_like, params.rel_floor)
    if name == "zscore":
        return ZScoreDetector(params.half_life, params.warmup, params.count_like, params.rel_floor)
    if name == "gaussian":
        return GaussianDetector(params.warmup, window_size=max(2, int(params.half_life * 2)))
    if name == "hst":
        return HalfSpaceTreesDetector(params.warmup, window_size=max(10, int(params.half_life)), seed=params.seed)
    raise ValueError(f"unknown detector {name!r} (known: {', '.join(DETECTORS)})")


class AlarmGate:
    """Alarm suppression: one alarm per episode, and only for a score that beats the last ``k``.

    An episode starts when a score reaches ``threshold`` and beats the previous
    ``k`` scores; it ends after ``clear`` windows in a row below the threshold,
    or after ``max_episode`` windows (then the new level is accepted as normal).
    ``in_alarm`` tells the owner not to learn from the window.

    >>> gate = AlarmGate(threshold=5.0, k=3, clear=2)
    >>> [gate.update(s) for s in [1, 2, 6, 7, 8, 1, 1, 6, 1, 7]]  # the 8th: an episode ended, but 6 < 8
    [False, False, True, False, False, False, False, False, False, True]
    """

    def __init__(self, threshold: float, k: int = 10, clear: int = 5, max_episode: int = 120) -> None:
        self.threshold = threshold
        self.clear = clear
        self.max_episode = max_episode
        self.recent: deque[float] = deque(maxlen=max(k, 1))
        self.in_alarm = False
        self._quiet = 0
        self._length = 0

    def update(self, score: float) -> bool:
        """Take one window's score; True if it raises a new alarm."""
        beats = not self.recent or score > max(self.recent)
        self.recent.append(score)
        if self.in_alarm:
            self._length += 1
            self._quiet = self._quiet + 1 if score < self.threshold else 0
            if self._quiet >= self.clear or self._length >= self.max_episode:
                self.in_alarm = False
            return False
        if score >= self.threshold and beats:
            self.in_alarm, self._quiet, self._length = True, 0, 0
            return True
        return False
