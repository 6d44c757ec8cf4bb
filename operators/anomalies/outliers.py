"""Per-event outlier checks: baskets far outside the norm, and prices far from a SKU's usual price.

:class:`BasketOutliers` keeps, per channel, exponentially weighted mean and
variance (``river.stats``) of a basket's value and of its units on a log
scale, and flags a basket whose value or quantity is more than ``z`` standard
deviations above the norm (fraud-like baskets, mistyped quantities).

:class:`PriceOutliers` keeps each SKU's usual unit price (an EW mean of the
log price) and flags a price more than ``deviation`` away from it in either
direction (a pricing error at 25% of list price, a missing decimal point).
Flagged values are not learned at the full rate, so an error does not become
the norm; one alert per error episode of a SKU (it ends after ``cooldown_ms`` of event
time without an outlier price, and a usual price seen since).

>>> prices = PriceOutliers(deviation=0.5, warmup=3)
>>> [prices.score_one("A", p, ts) for ts, p in enumerate([10.0, 10.0, 10.0])]
[None, None, None]
>>> found = prices.score_one("A", 2.5, 3)
>>> found.kind, round(found.expected, 2), found.observed
('price_low', 10.0, 2.5)
>>> baskets = BasketOutliers(z=4.0, warmup=20)
>>> for i in range(40):
...     baskets.learn_one("web", 20.0 + i % 5, 1 + i % 2)
>>> [f.kind for f in baskets.score_one("web", 25.0, 2)], [f.kind for f in baskets.score_one("web", 4000.0, 60)]
([], ['basket_value', 'basket_quantity'])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from river import stats

__all__ = ["BasketOutliers", "Finding", "PriceOutliers"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One outlier: ``kind``, the value seen, the value expected, and a score (how far)."""

    kind: str
    observed: float
    expected: float
    score: float


class _LogNorm:
    """EW mean and variance of ``log1p(x)``."""

    __slots__ = ("mean", "var")

    def __init__(self, fading: float) -> None:
        self.mean = stats.EWMean(fading_factor=fading)
        self.var = stats.EWVar(fading_factor=fading)

    def learn(self, x: float) -> None:
        y = math.log1p(max(x, 0.0))
        self.mean.update(y)
        self.var.update(y)

    def z(self, x: float, floor: float) -> float:
        sd = max(math.sqrt(max(self.var.get(), 0.0)), floor)
        return (math.log1p(max(x, 0.0)) - self.mean.get()) / sd

    def expected(self) -> float:
        return math.expm1(self.mean.get())


class BasketOutliers:
    """Per-channel norms of basket value (major units) and quantity (units).

    ``z``: standard deviations above the norm (log scale) that flag a basket;
    ``half_life``: baskets; ``warmup``: baskets per channel learned before any flag;
    ``sd_floor``: floor of the log-scale standard deviation (guards a constant stream).
    """

    def __init__(self, z: float = 4.0, half_life: float = 500.0, warmup: int = 50, sd_floor: float = 0.1) -> None:
        self.z = z
        self.fading = 1.0 - 0.5 ** (1.0 / half_life)
        self.warmup = warmup
        self.sd_floor = sd_floor
        self._norms: dict[str, tuple[_LogNorm, _LogNorm, list[int]]] = {}

    def _norm(self, channel: str) -> tuple[_LogNorm, _LogNorm, list[int]]:
        norm = self._norms.get(channel)
        if norm is None:
            norm = self._norms[channel] = (_LogNorm(self.fading), _LogNorm(self.fading), [0])
        return norm

    def score_one(self, channel: str, value: float, quantity: int) -> list[Finding]:
        """The findings of one basket (before learning it)."""
        value_norm, qty_norm, seen = self._norm(channel)
        if seen[0] < self.warmup:
            return []
        found = []
        z_value = value_norm.z(value, self.sd_floor)
        if z_value > self.z:
            found.append(Finding("basket_value", value, value_norm.expected(), z_value))
        z_qty = qty_norm.z(quantity, self.sd_floor)
        if z_qty > self.z:
            found.append(Finding("basket_quantity", float(quantity), qty_norm.expected(), z_qty))
        return found

    def learn_one(self, channel: str, value: float, quantity: int) -> None:
        value_norm, qty_norm, seen = self._norm(channel)
        value_norm.learn(value)
        qty_norm.learn(quantity)
        seen[0] += 1


class PriceOutliers:
    """Each SKU's usual unit price, and prices far from it.

    ``deviation``: flag a price below ``usual / (1 + deviation)`` or above
    ``usual * (1 + deviation)``; ``half_life``: observations; ``warmup``:
    observations of a SKU before any flag; a flagged price is learned with
    ``outlier_weight`` times the normal weight; ``cooldown_ms``: one finding per
    error *episode* of a SKU, which ends when no outlier price of it was seen for this
    much event time and a usual price was seen since (an error lasting hours is one alert, not
    one per hour); outlier prices only, for ``rebase_ms``, are a price change: the price
    becomes the usual price.
    """

    def __init__(self, deviation: float = 0.5, half_life: float = 50.0, warmup: int = 5,
                 outlier_weight: float = 0.02, cooldown_ms: int = 3_600_000, rebase_ms: int = 86_400_000) -> None:
        if deviation <= 0:
            raise ValueError(f"deviation must be > 0, got {deviation}")
        self.limit = math.log1p(deviation)
        self.alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self.warmup = warmup
        self.outlier_weight = outlier_weight
        self.cooldown_ms = cooldown_ms
        self.rebase_ms = rebase_ms
        # sku -> (EW mean of log price, observations, time of the last outlier price, start of the run of outliers
        # without a usual price in between, or -1)
        self._usual: dict[str, tuple[float, int, int, int]] = {}

    def score_one(self, sku: str, price: float, ts: int) -> Finding | None:
        """Check and learn one observed unit price; a finding if it is far from the usual one."""
        if price <= 0:
            return None  # free items and zero prices are not price errors of this kind
        y = math.log(price)
        usual = self._usual.get(sku)
        if usual is None:
            self._usual[sku] = (y, 1, -(1 << 62), -1)
            return None
        mean, n, last_outlier, episode = usual
        distance = y - mean
        outlier = n >= self.warmup and abs(distance) > self.limit
        weight = self.alpha * (self.outlier_weight if outlier else 1.0)
        if n < self.warmup:
            weight = max(weight, 1.0 / (n + 1))
        finding = None
        if outlier:
            new_run = episode < 0
            if new_run:
                episode = ts
            if ts - episode >= self.rebase_ms:  # only outliers for a day: a price change, the new usual price
                mean, weight, episode = y, 0.0, -1
            elif new_run and ts - last_outlier >= self.cooldown_ms:  # a new episode: usual prices seen since, and
                kind = "price_low" if distance < 0 else "price_high"
                finding = Finding(kind, price, math.exp(mean), abs(distance) / self.limit)
            last_outlier = max(last_outlier, ts)
        elif n >= self.warmup:
            episode = -1  # a usual price: the run of outliers is over
        self._usual[sku] = (mean + weight * distance, n + 1, last_outlier, episode)
        return finding

    def usual_price(self, sku: str) -> float | None:
        usual = self._usual.get(sku)
        return None if usual is None else math.exp(usual[0])

    def __len__(self) -> int:
        return len(self._usual)
