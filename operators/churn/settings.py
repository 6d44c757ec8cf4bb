"""The ``[churn]`` section of the config file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChurnConfig:
    horizon_ms: int
    tick_ms: int
    model: str
    score_change: float
    at_risk: float
    lapsing: float
    learn_every: int
    warmup: int
    republish_ms: int
    window_ms: int
