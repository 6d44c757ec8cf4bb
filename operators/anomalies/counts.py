"""Count evidence: a seasonal Poisson CUSUM of rate drops and spikes, learned online per series."""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

from river import base

from operators.anomalies.base import value_of

__all__ = ["SeasonalCounts"]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


class SeasonalCounts(base.AnomalyDetector):
    """Evidence that a count series' rate dropped or spiked, against its own seasonal rate.

    ``x`` is ``{"value": count, "t": epoch ms}`` (``t``: the window's start, in the series'
    local wall-clock time if it has one). The expected count of a window is ``level x
    profile[slot]``, learned online (multiplicative Holt-Winters without trend): ``level``
    is the exponentially weighted mean of the de-seasonalised counts (half-life
    ``level_half_life`` windows, so a series is usable from its first hours), and
    ``profile`` one factor per *slot* of the season (``slot_ms`` wide, ``period_ms`` long:
    hour of day by default, hour of week with ``period_ms`` a week), the EW mean of
    ``count / level`` in that slot (half-life ``half_life`` observations of the slot), which
    learns the daily cycle. Every update is winsorised at 3 Poisson standard deviations
    from the expectation, so one burst moves neither much. The level learns per unit of
    the slot's profile where it is below 1 (its exposure: a window whose slot expects a
    twentieth of the usual counts moves the level a twentieth as much), so a store's quiet nights do not wipe out
    what its days taught. And a sparse series learns more slowly: an update whose expected
    count ``λ`` is below ``rate * memory`` (1.7 at the default half-lives) learns at
    ``λ / memory`` instead of ``rate`` (at least ``rate * slowest``), so each estimate
    averages over about ``memory`` counts. Without both, a store selling a few items an
    hour took its last sale for its rate and the quiet hour after it for an outage, and a
    store closed at night started every morning from a level near zero.

    Two one-sided Poisson CUSUMs accumulate log-likelihood ratios over consecutive windows:
    a drop to ``drop`` times the expected rate (a count ``k`` against ``λ`` adds
    ``k·log(drop) + λ·(1 - drop)`` nats) and a spike to ``spike`` times it (``k·log(spike)
    - λ·(spike - 1)``), each divided by the series' dispersion (the EW mean of the squared
    Pearson residual, at least 1: quasi-Poisson, so overdispersed series need more
    evidence), floored at 0 and capped at ``cap`` nats (an episode ends soon after the
    anomaly does). The score is ``S / (S + nats)`` of the larger statistic ``S``: 0..1,
    monotone, never 1.0, 0.5 at ``nats`` nats and 0.75 at ``3 * nats``. A Poisson series at
    its expected rate reaches ``S`` nats with probability at most ``exp(-S)`` per excursion
    (Ville's inequality), so a score means the same on every series: a zero-order window at a
    store that usually sells 10 is 8 nats; a window expected to hold nothing, no evidence.

    It learns every window; counts seen while an alarm is up (``S >= 3 * nats``) are
    learned at ``alarm_weight`` of the normal weight, so an outage does not teach the
    series that zero is normal, yet a lasting change is learned. The first ``warmup``
    windows give no evidence. Memory: one float per slot.

    >>> counts = SeasonalCounts()
    >>> for day in range(28):  # a store: 10 sales a window from 09:00 to 21:00, 1 at night
    ...     for quarter in range(96):
    ...         t = day * DAY_MS + quarter * 900_000
    ...         counts.learn_one({"value": 10 if 36 <= quarter < 84 else 1, "t": t})
    >>> at_noon = 28 * DAY_MS + 48 * 900_000
    >>> counts.score_one({"value": 11, "t": at_noon}), round(counts.expected)
    (0.0, 10)
    >>> round(counts.score_one({"value": 0, "t": at_noon}), 2), counts.direction
    (0.73, 'drop')
    >>> round(counts.score_one({"value": 0, "t": 28 * DAY_MS}), 2)  # a quiet night: expected 1, little evidence
    0.2
    """

    #: Defaults for a series restored from state written before sparse series learned slowly.
    memory = 20.0
    slowest = 1 / 24

    def __init__(self, slot_ms: int = HOUR_MS, period_ms: int = DAY_MS, half_life: float = 8.0,
                 level_half_life: float = 8.0, drop: float = 0.2, spike: float = 2.5, nats: float = 3.0,
                 cap: float = 15.0, warmup: int = 8, alarm_weight: float = 0.1, memory: float = 20.0,
                 slowest: float = 1 / 24) -> None:
        if slot_ms <= 0 or period_ms % slot_ms:
            raise ValueError("slot_ms must be > 0 and divide period_ms")
        if not 0 < drop < 1 < spike or nats <= 0 or half_life <= 0 or level_half_life <= 0:
            raise ValueError("need 0 < drop < 1 < spike, nats > 0 and half-lives > 0")
        self.slot_ms = slot_ms
        self.period_ms = period_ms
        self.half_life = half_life
        self.level_half_life = level_half_life
        self.drop = drop
        self.spike = spike
        self.nats = nats
        self.cap = cap
        self.warmup = warmup
        self.alarm_weight = alarm_weight
        self.memory = memory
        self.slowest = slowest
        slots = period_ms // slot_ms
        self._alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self._level_alpha = 1.0 - 0.5 ** (1.0 / level_half_life)
        self._log_drop = math.log(drop)
        self._log_spike = math.log(spike)
        self._profile = [1.0] * slots
        self._seen = [0] * slots
        self._level = 0.0
        self.n = 0
        self._dispersion = 1.0
        self.drop_nats = 0.0
        self.spike_nats = 0.0
        self._expected = 0.0
        self._drop_base = 0.0
        self._spike_base = 0.0
        self.direction = "spike"
        self._cache: tuple[float, int, float, float, float] | None = None  # (k, slot, drop, spike, expected)

    @property
    def expected(self) -> float:
        """The expected count of the last scored window (during an excursion: where it began)."""
        return self._expected

    def _step(self, x: dict[Hashable, Any]) -> tuple[float, int, float, float, float]:
        k = value_of(x) if "t" not in x else float(x["value"])
        slot = int(x.get("t", 0)) % self.period_ms // self.slot_ms
        cache = self._cache
        if cache is not None and cache[0] == k and cache[1] == slot:
            return cache
        drop, spike = self.drop_nats, self.spike_nats
        expected = self._level * self._profile[slot]
        if self.n >= self.warmup:
            phi = self._dispersion
            drop = min(self.cap, max(0.0, drop + (k * self._log_drop + expected * (1.0 - self.drop)) / phi))
            spike = min(self.cap, max(0.0, spike + (k * self._log_spike - expected * (self.spike - 1.0)) / phi))
        # the expectation when the excursion began: what the series usually does, for the alert record
        base = expected
        if drop > spike and self.drop_nats > 0:
            base = self._drop_base
        elif spike >= drop and self.spike_nats > 0:
            base = self._spike_base
        result = (k, slot, drop, spike, expected)
        self._cache = result
        self._expected = base
        return result

    def _rate(self, base: float, expected: float) -> float:
        """``base``, slowed where one update expects fewer than ``base * memory`` counts, so an
        estimate averages over about ``memory`` counts (at most ``1 / slowest`` times slower)."""
        share = expected / (base * self.memory)
        return base if share >= 1.0 else base * max(share, self.slowest)

    def score_one(self, x: dict[Hashable, Any]) -> float:
        _, _, drop, spike, _ = self._step(x)
        self.direction = "drop" if drop > spike else "spike"
        s = max(drop, spike)
        return s / (s + self.nats)

    def learn_one(self, x: dict[Hashable, Any]) -> None:
        k, slot, drop, spike, expected = self._step(x)
        self._cache = None
        alarm = max(drop, spike) >= 3.0 * self.nats
        weight = self.alarm_weight if alarm else 1.0
        n = self.n
        if n:  # winsorise at 3 standard deviations of the expectation
            spread = 3.0 * math.sqrt(self._dispersion * max(expected, 1.0))
            k = min(max(k, expected - spread), expected + spread)
        if n >= self.warmup and expected > 0.5 and not alarm:
            pearson = min((k - expected) ** 2 / expected, 25.0)
            self._dispersion = max(1.0, self._dispersion + 0.002 * (pearson - self._dispersion))
        seen = self._seen[slot]
        if not seen:  # a slot seen for the first time starts from its predecessor: daily cycles are smooth
            self._profile[slot] = self._profile[slot - 1]
        profile = self._profile[slot]
        level = self._level
        level_rate = max(self._rate(self._level_alpha, level), 1.0 / (n + 1))
        # Per unit of the slot's profile (its exposure): a quiet night's zeros, where little is
        # expected, say little about the level; one profile of 1 is one window's worth.
        gain = 1.0 - (1.0 - level_rate) ** profile if level_rate < 1.0 and profile < 1.0 else level_rate
        self._level = level + weight * gain * (k / profile - level)
        if level > 0:
            rate = weight * self._rate(self._alpha, level * profile)
            self._profile[slot] = min(20.0, max(0.05, profile + rate * (k / level - profile)))
        self._seen[slot] = seen + 1
        self.n = n + 1
        if not self.drop_nats:
            self._drop_base = expected
        if not self.spike_nats:
            self._spike_base = expected
        self.drop_nats, self.spike_nats = drop, spike
