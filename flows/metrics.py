"""Prometheus metrics of the flow. Labels are bounded: topic, type, reason, shard, location.

Never a customer id or a SKU as a label: those are unbounded.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
DELIVERY_FAILURES = Counter(
    "channelflow_delivery_failures",
    "Output messages the producer or the broker refused (each becomes a delivery_failed dead letter when it "
    "was not one itself), by logical output topic and librdkafka error code (msg_size_too_large, ...).",
    ["topic", "code"],
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

# -- customers and churn (labels: kind of customer key, model) --
CUSTOMER_PROFILES = Gauge(
    "channelflow_customer_profiles",
    "Customer profiles held by this process, by kind (account, loyalty: a card not linked yet, device: anonymous).",
    ["kind"],
)
CUSTOMER_LINKS = Gauge(
    "channelflow_customer_links",
    "Devices and loyalty cards linked to an account, held by this process.",
)
CHURN_PENDING = Gauge(
    "channelflow_churn_pending_snapshots",
    "Churn snapshots waiting for their horizon to pass (delayed labels), held by this process.",
)
CHURN_EXAMPLES = Counter(
    "channelflow_churn_examples",
    "Labelled churn snapshots learned by the model, by label.",
    ["label"],
)
CHURN_AUC = Gauge(
    "channelflow_churn_auc",
    "Progressive (test-then-train) ROC AUC of the churn model and of the recency-only baseline.",
    ["model"],
)
CHURN_LOG_LOSS = Gauge(
    "channelflow_churn_log_loss",
    "Progressive (test-then-train) log loss of the churn model and of the recency-only baseline.",
    ["model"],
)
CUSTOMER_SCORES = Counter(
    "channelflow_customer_scores",
    "Records written to customer-scores, by kind (score, erasure).",
    ["kind"],
)

# -- KPI inputs, anomalies and latency (labels: channel, store, type, kind, topic) --
SESSIONS = Counter(
    "channelflow_sessions",
    "Online sessions started (a session id unseen for anomaly.session_timeout), by channel (web, app); "
    "store is 'online'. Conversion = orders / sessions.",
    ["channel", "store"],
)
ADD_TO_CARTS = Counter(
    "channelflow_add_to_carts",
    "add_to_cart events (de-duplicated), by channel; store is 'online'.",
    ["channel", "store"],
)
ANOMALIES = Counter(
    "channelflow_anomalies",
    "Anomaly alerts written to alerts, by measure or check (type: orders, revenue, sessions, conversion, "
    "add_to_carts, returns, price, basket_value, basket_quantity), channel, store (configured ids, 'all' for "
    "the store channel, 'online', else 'other') and kind (spike, drop, price_low, price_high, basket_value, "
    "basket_quantity).",
    ["type", "channel", "store", "kind"],
)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
INGEST_LATENCY = Histogram(
    "channelflow_ingest_latency_seconds",
    "Wall-clock time at decode minus the Kafka message timestamp, by input topic.",
    ["topic"],
    buckets=_LATENCY_BUCKETS,
)
END_TO_END_LATENCY = Histogram(
    "channelflow_end_to_end_latency_seconds",
    "Wall-clock time when an output record is serialized minus the event time (ts) of the input that caused "
    "it, by logical output topic (in a replay of old data this is the data's age).",
    ["topic"],
    buckets=_LATENCY_BUCKETS,
)

# -- promotions (labels: rule names from the rules file, fixed outcome codes, group) --
PROMOTIONS = Counter(
    "channelflow_promotions",
    "Promotion decisions by rule and outcome: sent, holdout, suppressed_<reason>, quiet_hours_delayed, cancelled, waitlist_full.",
    ["rule", "outcome"],
)
PROMOTION_CONVERSIONS = Counter(
    "channelflow_promotion_conversions",
    "Promotions converted (coupon redeemed, or a purchase within the attribution window), by rule and group (treated, holdout).",
    ["rule", "group"],
)
PROMOTION_REDEMPTIONS = Counter(
    "channelflow_promotion_redemptions",
    "Promotion coupons redeemed online or at a till, by rule.",
    ["rule"],
)
ATTRIBUTED_REVENUE = Counter(
    "channelflow_attributed_revenue",
    "Revenue of converted promotions (major currency units), by rule and group.",
    ["rule", "group"],
)
PROMOTION_CONVERSION_RATE = Gauge(
    "channelflow_promotion_conversion_rate",
    "Conversions per promotion recorded, by rule and group (treated: sent; holdout: recorded, not delivered).",
    ["rule", "group"],
)
PROMOTION_UPLIFT = Gauge(
    "channelflow_promotion_uplift",
    "Treated minus holdout conversion rate, by rule.",
    ["rule"],
)
INFO = Gauge(
    "channelflow_info",
    "Always 1; its labels name the package version and the configured [currency] code (set by `channelflow run`).",
    ["version", "currency"],
)
