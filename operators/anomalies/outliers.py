"""Per-event outlier checks: baskets far outside the norm, and prices far from a SKU's usual price.

:class:`BasketOutliers` keeps, per channel, exponentially weighted mean and
variance (``river.stats``) of a basket's value and of its units on a log
scale, and flags a basket whose value or quantity is more than ``z`` standard
deviations above the norm (fraud-like baskets, mistyped quantities).

:class:`PriceOutliers` keeps each SKU's usual unit prices (EW means of the log
price: a SKU may have a trade and a retail price, or quantity breaks) and flags a
price more than ``deviation`` away from all of them in either direction (a pricing
error at 25% of list price, a missing decimal point).
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
from dataclasses import dataclass, field
from typing import Any

from river import stats

from operators.state.pickling import pickled_as_call
from operators.state.tracked import MutableTrackedDict

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
    """Each SKU's usual unit prices, and prices far from all of them.

    A SKU may have more than one regular price: a quantity break, a trade and a retail price
    (in the UCI Online Retail data most products sell at about twice the trade price to
    customers without an account). So each SKU keeps up to ``max_levels`` price *levels*,
    each an EW mean of the log prices near it; a price is usual when it is within
    ``deviation`` of some level (below ``level / (1 + deviation)`` or above
    ``level * (1 + deviation)`` of every level is an outlier). Levels come from the SKU's
    first ``warmup`` sightings (no flags then) and from an outlier price that begins
    ``tier_episodes`` error episodes (below): a second regular price keeps coming back among
    the usual ones, a pricing error lasts until it is fixed. So a regular price first seen
    after the warm-up alerts at most ``tier_episodes - 1`` times. When a new level has no
    room, the one seen least recently gives way.

    ``half_life``: sightings of a level; a flagged price is learned with ``outlier_weight``
    times the normal weight by its nearest level; ``cooldown_ms``: one finding per error
    *episode* of a SKU, which ends when no outlier price of it was seen for this much event
    time and a usual price was seen since (an error lasting hours is one alert, not one per
    hour); outlier prices only, for ``rebase_ms``, are a price change: the price becomes a
    level too (the others stay: on a SKU sold a few times a week, a day of only its bulk
    price is not the end of its retail price).

    >>> prices = PriceOutliers(deviation=0.5, warmup=3)
    >>> [prices.score_one("A", p, ts) for ts, p in enumerate([10.0, 21.0, 10.0, 20.0])]  # two regular prices
    [None, None, None, None]
    >>> found = prices.score_one("A", 2.5, 4)
    >>> found.kind, round(found.expected, 2)  # far from both: the nearest is the expected price
    ('price_low', 10.0)
    """

    def __init__(self, deviation: float = 0.5, half_life: float = 50.0, warmup: int = 5,
                 outlier_weight: float = 0.02, cooldown_ms: int = 3_600_000, rebase_ms: int = 86_400_000,
                 max_levels: int = 4, tier_episodes: int = 3) -> None:  # fmt: skip
        if deviation <= 0:
            raise ValueError(f"deviation must be > 0, got {deviation}")
        if max_levels < 1 or tier_episodes < 1:
            raise ValueError("max_levels and tier_episodes must be >= 1")
        self.limit = math.log1p(deviation)
        self.alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self.warmup = warmup
        self.outlier_weight = outlier_weight
        self.cooldown_ms = cooldown_ms
        self.rebase_ms = rebase_ms
        self.max_levels = max_levels
        self.tier_episodes = tier_episodes
        # A tracked dict: a snapshot stores the SKUs seen since the last one (operators.state).
        self._skus: MutableTrackedDict[str, _SkuPrices] = MutableTrackedDict()

    def __setstate__(self, state: dict[str, Any]) -> None:
        # State written before SKUs had several levels: one EW mean per SKU, in ``_usual``.
        usual: dict[str, tuple[float, int, int, int]] | None = state.pop("_usual", None)
        self.__dict__.update(state)
        if usual is not None:
            self.max_levels, self.tier_episodes = 4, 3
            self._skus = MutableTrackedDict(
                (sku, _SkuPrices([[mean, n, max(last, 0)]], n, last, episode))
                for sku, (mean, n, last, episode) in usual.items()
            )

    def score_one(self, sku: str, price: float, ts: int) -> Finding | None:
        """Check and learn one observed unit price; a finding if it is far from every usual one."""
        if price <= 0:
            return None  # free items and zero prices are not price errors of this kind
        y = math.log(price)
        state = self._skus.get(sku)
        if state is None:
            self._skus[sku] = _SkuPrices([[y, 1, ts]], 1, -(1 << 62), -1)
            return None
        levels = state.levels
        level = levels[0] if len(levels) == 1 else _nearest(levels, y)
        distance = y - level[0]
        n = state.n
        state.n = n + 1
        if -self.limit <= distance <= self.limit:  # a usual price (the common case: inlined)
            count = level[1]
            level[0] += (self.alpha if (count + 1) * self.alpha >= 1.0 else 1.0 / (count + 1)) * distance
            level[1] = count + 1
            if ts > level[2]:  # (max() costs a call per price)
                level[2] = ts
            if n >= self.warmup:
                state.episode = -1  # a run of outliers is over
            return None
        if n < self.warmup:  # still learning the SKU's prices: a new level
            self._add_level(state, y, ts)
            return None
        # An outlier, far from every level. A new error episode: usual prices seen since the last
        # outlier, and the cooldown passed (carts that kept a wrong price after its fix bring it
        # back for a while: the same error).
        new_run = state.episode < 0 and ts - state.last_outlier >= self.cooldown_ms
        if state.episode < 0:
            state.episode = ts
        if new_run and self._recurs(state, y, ts):  # back again and again: a regular price
            self._add_level(state, y, ts)
            state.episode = -1
            return None
        if ts - state.episode >= self.rebase_ms:  # only outliers for a day: a price change, a new usual price
            self._add_level(state, y, ts)
            state.episode = -1
            state.last_outlier = max(state.last_outlier, ts)
            return None
        finding = None
        if new_run:
            kind = "price_low" if distance < 0 else "price_high"
            finding = Finding(kind, price, math.exp(level[0]), abs(distance) / self.limit)
        state.last_outlier = max(state.last_outlier, ts)
        self._learn_outlier(level, y, ts)
        return finding

    def _learn_outlier(self, level: list[Any], y: float, ts: int) -> None:
        """An outlier price moves its nearest level a little (``outlier_weight``), so an error
        does not become the usual price."""
        level[0] += self.alpha * self.outlier_weight * (y - level[0])
        level[1] += 1
        level[2] = max(level[2], ts)

    def _recurs(self, state: _SkuPrices, y: float, ts: int) -> bool:
        """An error episode of outlier price ``y`` begins: True when it is the ``tier_episodes``-th."""
        candidates = state.candidates
        near = _nearest(candidates, y) if candidates else None
        if near is None or abs(y - near[0]) > self.limit:
            _make_room(candidates, self.max_levels)
            near = [y, 0, ts]
            candidates.append(near)
        near[1] += 1
        near[2] = ts
        if near[1] < self.tier_episodes:
            return False
        candidates.remove(near)
        return True

    def _add_level(self, state: _SkuPrices, y: float, ts: int) -> None:
        _make_room(state.levels, self.max_levels)
        state.levels.append([y, 1, ts])

    def usual_price(self, sku: str) -> float | None:
        """The SKU's most seen usual price (None: never seen)."""
        state = self._skus.get(sku)
        return None if state is None else math.exp(max(state.levels, key=lambda lv: lv[1])[0])

    def usual_prices(self, sku: str) -> list[float]:
        """All the SKU's usual prices, lowest first."""
        state = self._skus.get(sku)
        return [] if state is None else sorted(math.exp(lv[0]) for lv in state.levels)

    def __len__(self) -> int:
        return len(self._skus)


def _nearest(prices: list[list[Any]], y: float) -> list[Any]:
    """The level or candidate (``[log price, count, last seen]``, at least one) nearest log price ``y``."""
    return min(prices, key=lambda p: abs(y - p[0]))


def _make_room(prices: list[list[Any]], cap: int) -> None:
    """Below ``cap`` entries: the one seen least recently gives way."""
    if len(prices) >= cap:
        prices.remove(min(prices, key=lambda p: p[2]))


@pickled_as_call
@dataclass(slots=True)
class _SkuPrices:
    """One SKU's price levels and error episodes."""

    levels: list[list[Any]]  # [EW mean of log price, sightings, last seen]
    n: int  # sightings of the SKU
    last_outlier: int  # time of the last outlier price
    episode: int  # start of the run of outliers without a usual price in between, or -1
    # outlier prices that began error episodes: [log price, episodes, when last]
    candidates: list[list[Any]] = field(default_factory=list)
