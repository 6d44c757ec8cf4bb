"""The ``[anomaly]`` section of the config file."""

from __future__ import annotations

from dataclasses import dataclass

ANOMALY_DETECTORS = ("kpi", "sad", "hst")

#: Window measures (``operators.anomalies.windows``) a config may name in ``count_measures``/``context_measures``.
ANOMALY_MEASURES = ("orders", "revenue", "returns", "add_to_carts", "checkouts", "sessions", "conversion")

#: The alarm gate's default ``k`` (points a score must beat; points between alarms).
DEFAULT_SUPPRESS_K = 150


@dataclass(frozen=True)
class AnomalyConfig:
    """``[anomaly]``: KPI windows, the window detector and the per-event outlier checks."""

    window_ms: int
    session_timeout_ms: int
    detector: str
    threshold: float
    lags: int
    sample_size: int
    warmup: int
    suppress_k: int
    idle_windows: int
    min_sessions: int
    basket_z: float
    basket_warmup: int
    price_deviation: float
    price_warmup: int
    outlier_cooldown_ms: int
    count_measures: tuple[str, ...] = ("orders", "sessions")
    context_measures: tuple[str, ...] = ()
    count_nats: float = 3.0
    checkout_nats: float = 2.5
    count_drop: float = 0.2
    count_spike: float = 2.5
    episode_quiet: int = 4
    unpriced_skus: tuple[str, ...] = ()
    count_period_ms: int = 86_400_000  # the count tests' season: a day (hour-of-day profile) or a week
