"""The ``[anomaly]`` section of the config file."""

from __future__ import annotations

from dataclasses import dataclass

ANOMALY_DETECTORS = ("cusum", "zscore", "gaussian", "hst")


@dataclass(frozen=True)
class AnomalyConfig:
    """``[anomaly]``: KPI windows, the window detector and the per-event outlier checks."""

    window_ms: int
    session_timeout_ms: int
    detector: str
    threshold: float
    half_life: float
    warmup: int
    drift: float
    suppress_k: int
    clear_windows: int
    max_episode_windows: int
    min_sessions: int
    basket_z: float
    basket_warmup: int
    price_deviation: float
    price_warmup: int
    outlier_cooldown_ms: int
