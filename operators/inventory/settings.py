"""The ``[inventory]`` section of the config file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class InventoryConfig:
    safety_stock: Mapping[str, int]
    safety_stock_overrides: Mapping[tuple[str, str], int]
    low_stock_threshold: int
    pickup_expiry_ms: int
