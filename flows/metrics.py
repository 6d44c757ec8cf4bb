"""Prometheus metrics of the flow. Labels are bounded: topic, type, reason, shard, location.

Never a customer id or a SKU as a label: those are unbounded.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS = Counter(
    "channelflow_events",
    "Valid input events decoded (repeats included), by input topic and event type.",
    ["topic", "type"],
)
DEAD_LETTERS = Counter(
    "channelflow_dead_letters",
    "Input messages refused and sent to dead-letters, by source topic and reason code.",
    ["topic", "reason"],
)
DUPLICATES = Counter(
    "channelflow_duplicates",
    "Events dropped as repeats of an event_id within the dedupe horizon, by input topic.",
    ["topic"],
)
LATE_EVENTS = Counter(
    "channelflow_late_events",
    "Events that arrived after the watermark passed their event time (still applied), by input topic.",
    ["topic"],
)
WATERMARK = Gauge(
    "channelflow_watermark_timestamp_seconds",
    "Event-time watermark of each first-stage shard, as a Unix time.",
    ["shard"],
)
WATERMARK_LAG = Gauge(
    "channelflow_watermark_lag_seconds",
    "Wall-clock time minus the shard's watermark when it last moved.",
    ["shard"],
)
OUTPUTS = Counter(
    "channelflow_output_records",
    "Records written to output topics, by logical output topic.",
    ["topic"],
)
ORDERS = Counter(
    "channelflow_orders",
    "Orders (online order_placed and till sales), by channel (web, app, store) and store (online for web/app).",
    ["channel", "store"],
)
REVENUE = Counter(
    "channelflow_revenue",
    "Order value in the configured currency's major units, by channel and store.",
    ["channel", "store"],
)
RETURNS = Counter(
    "channelflow_returns",
    "Returns at the tills, by store.",
    ["channel", "store"],
)
REFUNDS = Counter(
    "channelflow_refunds",
    "Value of returned lines in major units, by store.",
    ["channel", "store"],
)
STOCK_OUTS = Gauge(
    "channelflow_stock_outs",
    "SKU-locations with nothing available, by location (configured ids; others as 'other') and type.",
    ["location", "location_type"],
)
LOW_STOCK = Gauge(
    "channelflow_low_stock",
    "SKU-locations at or below the low-stock threshold, by location and type.",
    ["location", "location_type"],
)
OPEN_RESERVATIONS = Gauge(
    "channelflow_open_reservations",
    "Reserved order lines not yet fulfilled, cancelled or expired, by location and type.",
    ["location", "location_type"],
)
STOCK_ALERTS = Counter(
    "channelflow_stock_alerts",
    "Stock alerts written to inventory-updates (low_stock, out_of_stock, back_in_stock, oversold), by location type.",
    ["alert", "location_type"],
)
RESERVATION_EXPIRIES = Counter(
    "channelflow_reservation_expiries",
    "Uncollected pickup reservations released on expiry, by location type.",
    ["location_type"],
)
