"""Business KPI inputs read off single events: orders, revenue and returns by channel.

The flow adds these up in Prometheus counters; dashboards derive conversion
and average order value from them. ``channel`` is ``web``, ``app`` or
``store``; ``store`` is the store id for till events, else ``online``.

>>> from operators.contract.events import Event
>>> sale = Event("e1", "sale", "pos", 0, {"store_id": "S001", "total": 12.5})
>>> kpi_of(sale)
Kpi(kind='order', channel='store', store='S001', amount_millis=12500)
"""

from __future__ import annotations

from typing import NamedTuple

from operators.contract.events import Event
from operators.contract.money import to_millis


class Kpi(NamedTuple):
    """One KPI contribution: an ``order`` or a ``return`` and its value in milli-units."""

    kind: str
    channel: str
    store: str
    amount_millis: int


def kpi_of(event: Event) -> Kpi | None:
    """The KPI contribution of an event, or None for events that carry no money."""
    body = event.body
    if event.type == "order_placed":
        return Kpi("order", body["channel"], "online", to_millis(body["total"]))
    if event.type == "sale":
        return Kpi("order", "store", body["store_id"], to_millis(body["total"]))
    if event.type == "return":
        refund = sum(line["qty"] * to_millis(line["unit_price"]) for line in body["lines"])
        return Kpi("return", "store", body["store_id"], refund)
    return None
