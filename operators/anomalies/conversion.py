"""Conversion evidence: a binomial CUSUM of a collapse in orders per checkout, learned online per series."""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

from river import base

__all__ = ["ConversionCusum"]


class ConversionCusum(base.AnomalyDetector):
    """Evidence that a channel's checkouts stopped converting, whatever its traffic.

    ``x`` is ``{"orders": k, "checkouts": n}`` for one window. The usual conversion ``p``
    is the EW mean of orders per checkout (weighted by checkouts, half-life
    ``half_life`` checkouts). A one-sided binomial CUSUM accumulates the log-likelihood
    ratio of a collapse to ``drop * p`` against ``p``: ``k·log(drop) + (n - k)·log((1 -
    drop·p) / (1 - p))`` nats per window, floored at 0 and capped at ``cap``. A checkout that
    does not convert is ~0.8 nats when ``p`` is 0.6; a window without checkouts, none (so
    quiet hours and traffic swings are not evidence: the test conditions on the checkouts).
    The score is ``S / (S + nats)``, as :class:`~operators.anomalies.counts.SeasonalCounts`.
    Windows seen while an alarm is up (``S >= 3 * nats``) are learned at ``alarm_weight``.
    The first ``warmup`` checkouts give no evidence. Memory: a few floats.

    >>> test = ConversionCusum()
    >>> for i in range(300):
    ...     test.learn_one({"orders": 3 if i % 2 else 2, "checkouts": 4})
    >>> test.score_one({"orders": 3, "checkouts": 5}), round(test.expected, 2)
    (0.0, 3.13)
    >>> for _ in range(3):
    ...     test.learn_one({"orders": 0, "checkouts": 4})
    >>> round(test.score_one({"orders": 0, "checkouts": 0}), 2)  # three windows of failed checkouts
    0.77
    """

    def __init__(self, half_life: float = 200.0, drop: float = 0.2, nats: float = 3.0, cap: float = 15.0,
                 warmup: int = 30, alarm_weight: float = 0.1) -> None:
        if not 0 < drop < 1 or nats <= 0 or half_life <= 0:
            raise ValueError("need 0 < drop < 1, nats > 0 and half_life > 0")
        self.half_life = half_life
        self.drop = drop
        self.nats = nats
        self.cap = cap
        self.warmup = warmup
        self.alarm_weight = alarm_weight
        self._alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self.p = 0.0
        self.trials = 0.0
        self.drop_nats = 0.0
        self._expected = 0.0
        self.direction = "drop"

    @property
    def expected(self) -> float:
        """Orders expected in the last scored or learned window (usual conversion x checkouts)."""
        return self._expected

    def _next(self, x: dict[Hashable, Any]) -> tuple[float, float, float]:
        k, n = float(x["orders"]), float(x["checkouts"])
        s = self.drop_nats
        p = min(self.p, 0.99)
        self._expected = p * n
        if self.trials >= self.warmup and p > 0 and n > 0:
            p1 = self.drop * p
            s += min(k, n) * math.log(self.drop) + max(n - k, 0.0) * math.log((1.0 - p1) / (1.0 - p))
            s = min(self.cap, max(0.0, s))
        return k, n, s

    def score_one(self, x: dict[Hashable, Any]) -> float:
        s = self._next(x)[2]
        return s / (s + self.nats)

    def learn_one(self, x: dict[Hashable, Any]) -> None:
        k, n, s = self._next(x)
        self.drop_nats = s
        if n <= 0:
            return
        weight = self.alarm_weight if s >= 3.0 * self.nats else 1.0
        # n trials at once: the EW mean of orders per checkout with n steps of alpha (bias-corrected start)
        keep = (1.0 - self._alpha) ** (n * weight)
        self.trials += n
        share = max(1.0 - keep, n / self.trials)
        self.p += share * (min(k, n) / n - self.p)
