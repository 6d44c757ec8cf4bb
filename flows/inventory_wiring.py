"""Inventory in the flow: its stage, its settings from config, and its metrics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from flows import metrics
from flows.config import Config
from flows.domain_spec import DomainSpec
from flows.topology import INVENTORY, PUBLISHES, READS
from operators.inventory.domain import (
    Inventory,
    InventoryHealth,
    InventorySettings,
    inventory_shards,
)
from operators.time.stream_items import Output


def inventory_settings(config: Config) -> InventorySettings:
    """The inventory domain's settings from the ``[inventory]`` and ``[[locations]]`` config."""
    inventory = config.inventory
    return InventorySettings(
        locations=config.locations,
        safety_stock_by_type=dict(inventory.safety_stock),
        safety_stock_overrides=dict(inventory.safety_stock_overrides),
        low_stock_threshold=inventory.low_stock_threshold,
        pickup_expiry_ms=inventory.pickup_expiry_ms,
    )


class InventoryMetrics:
    """Keeps the inventory gauges as the sum over this process's shards.

    Location labels are limited to configured locations; any other location
    id (it comes from input) is reported as ``other``.
    """

    def __init__(self, location_types: Mapping[str, str]) -> None:
        self.location_types = dict(location_types)
        self._by_shard: dict[int, InventoryHealth] = {}

    def _label(self, location_id: str) -> tuple[str, str]:
        kind = self.location_types.get(location_id)
        return (location_id, kind) if kind else ("other", "other")

    def observe_shard(self, shard: int, inventory: Inventory) -> None:
        self._by_shard[shard] = inventory.health()
        totals: dict[tuple[str, str], list[int]] = {}
        for health in self._by_shard.values():
            for location_id, loc in health.locations.items():
                row = totals.setdefault(self._label(location_id), [0, 0, 0])
                row[0] += loc.stock_outs
                row[1] += loc.low_stock
                row[2] += loc.open_reservations
        for labels, (outs, low, reserved) in totals.items():
            metrics.STOCK_OUTS.labels(*labels).set(outs)
            metrics.LOW_STOCK.labels(*labels).set(low)
            metrics.OPEN_RESERVATIONS.labels(*labels).set(reserved)

    def observe_output(self, output: Output) -> None:
        record = output.value.get("record")
        if record == "alert":
            _, kind = self._label(output.value["location_id"])
            metrics.STOCK_ALERTS.labels(output.value["alert"], kind).inc()
        elif record == "expiry":
            _, kind = self._label(output.value["location_id"])
            metrics.RESERVATION_EXPIRIES.labels(kind).inc()


def inventory_spec(config: Config, *, stock_signals: bool = False) -> DomainSpec:
    """The ``inventory`` stage, sharded by SKU; ``stock_signals`` when a stage reads its stock levels."""
    settings = replace(inventory_settings(config), stock_signals=stock_signals)
    shards = config.flow.shards
    observed = InventoryMetrics({loc.id: loc.type for loc in config.locations})
    return DomainSpec(
        INVENTORY,
        inventory_shards,
        lambda shard: Inventory(settings, shard, shards),
        observed.observe_shard,
        observed.observe_output,
        reads=READS[INVENTORY],
        publishes=PUBLISHES[INVENTORY],
        # Ordered, so the stock levels it publishes follow event time, not arrival order.
        ordered=True,
        # Live input: stock levels go out time.live_lateness behind the clock, not allowed_lateness.
        live=True,
    )
