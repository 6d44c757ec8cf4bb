"""The ``[customers]`` section of the config file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CustomersConfig:
    device_ttl_ms: int
    recent_views: int
    tiers: tuple[tuple[str, int], ...]  # (name, lifetime value threshold in milli-units), ascending
