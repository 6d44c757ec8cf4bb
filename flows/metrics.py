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
