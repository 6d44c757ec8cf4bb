"""Returns: about one purchase in ten comes back to a store's till, mostly restocked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from channelflow.simulator.population import Customer
from channelflow.simulator.settings import Location
from operators.time.units import DAY_MS, MINUTE_MS

if TYPE_CHECKING:
    from channelflow.simulator.world import Line, World

RETURN_RATE = 0.105
RESTOCK_RATE = 0.85
LATEST_RETURN_DAYS = 21


def _returned_lines(world: World, lines: list[Line]) -> list[Line]:
    rng = world.rng
    if len(lines) == 1 or rng.random() < 0.3:
        return lines
    sku, qty, unit_cents = rng.choice(lines)
    return [(sku, rng.randint(1, qty), unit_cents)]


def maybe_return(
    world: World,
    customer: Customer | None,
    store: Location,
    lines: list[Line],
    after_ms: int,
    loyalty_id: str | None,
    original: tuple[str, str],
) -> None:
    """Perhaps bring some of ``lines`` back to ``store`` within three weeks of ``after_ms``.

    ``original`` is ``("original_receipt_id", id)`` or ``("original_order_id", id)``.
    Churned customers return nothing.
    """
    rng = world.rng
    if rng.random() >= RETURN_RATE:
        return
    day = (after_ms - world.settings.start_ms) // DAY_MS + rng.randint(1, LATEST_RETURN_DAYS)
    ts = world.store_time(store, world.day_start(day))
    if ts is None or ts <= after_ms or (customer is not None and ts >= customer.churn_ms):
        return
    outage = world.pos_down(store.id, ts)
    if outage is not None:
        ts = outage.end + rng.randrange(5, 30) * MINUTE_MS
    skus = world.catalogue.skus
    out_lines: list[dict[str, Any]] = []
    store_index = world.location_index[store.id]
    for sku, qty, unit_cents in _returned_lines(world, lines):
        restock = rng.random() < RESTOCK_RATE
        out_lines.append({"sku": skus[sku], "qty": qty, "unit_price": unit_cents / 100, "restock": restock})
        if restock:
            world.ledger.credit_after(ts, store_index, sku, qty)
    world.push(ts, {
        "event_id": world.event_id(), "type": "return", "ts": ts,
        "store_id": store.id, "receipt_id": world.receipt_id(store.id), "loyalty_id": loyalty_id,
        "lines": out_lines, original[0]: original[1],
    })  # fmt: skip
