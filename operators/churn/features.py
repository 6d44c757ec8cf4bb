"""The churn model's feature vector, read off a profile at an event time.

Counts and amounts are heavy-tailed, so most features are ``log1p``-scaled;
the online scaler in the model then centres them. :func:`rfm` gives the raw
recency, frequency and monetary values published with each score.

>>> from operators.customers.profile import CustomerProfile

>>> from operators.time.units import DAY_MS
>>> profile = CustomerProfile(orders_by_channel={"store": 2}, revenue_by_channel={"store": 50_000},
...                           purchase_times=[0, 10 * DAY_MS], first_purchase=0, last_purchase=10 * DAY_MS)
>>> rfm(profile, 40 * DAY_MS)
{'recency_days': 30.0, 'frequency': 2, 'monetary': 50.0}
>>> round(churn_features(profile, 40 * DAY_MS)["recency_over_gap"], 2)
2.73
"""

from __future__ import annotations

import math

from operators.contract.money import from_millis
from operators.customers.profile import CustomerProfile
from operators.time.units import DAY_MS

#: The model's features, in a fixed order (snapshots store values in this order).
FEATURES = (
    "log_recency_days",
    "log_frequency",
    "log_avg_order_value",
    "log_tenure_days",
    "recency_over_gap",
    "log_orders_30d",
    "log_orders_90d",
    "log_sessions_30d",
    "online_share",
    "refund_share",
    "log_cart_value",
)


def rfm(profile: CustomerProfile, now: int) -> dict[str, float | int]:
    """Recency (days since the last purchase), frequency (purchases) and monetary (net spend)."""
    assert profile.last_purchase is not None
    return {
        "recency_days": round(max(0, now - profile.last_purchase) / DAY_MS, 3),
        "frequency": profile.orders,
        "monetary": float(from_millis(profile.lifetime_value_millis)),
    }


def churn_features(profile: CustomerProfile, now: int) -> dict[str, float]:
    """The feature vector of a customer with at least one purchase, at event time ``now``."""
    assert profile.last_purchase is not None and profile.first_purchase is not None
    orders = max(profile.orders, 1)
    recency = max(0, now - profile.last_purchase) / DAY_MS
    tenure = max(0, now - profile.first_purchase) / DAY_MS
    # The usual gap between purchases; a first-time buyer's is unknown, so use the tenure.
    span = (profile.last_purchase - profile.first_purchase) / DAY_MS
    gap = span / (orders - 1) if orders > 1 else tenure
    revenue = profile.revenue_millis
    online = orders - profile.orders_by_channel.get("store", 0)
    return {
        "log_recency_days": math.log1p(recency),
        "log_frequency": math.log1p(orders),
        "log_avg_order_value": math.log1p(max(0, revenue) / orders / 1000),
        "log_tenure_days": math.log1p(tenure),
        "recency_over_gap": min(recency / (gap + 1.0), 20.0),
        "log_orders_30d": math.log1p(_since(profile.purchase_times, now - 30 * DAY_MS)),
        "log_orders_90d": math.log1p(_since(profile.purchase_times, now - 90 * DAY_MS)),
        "log_sessions_30d": math.log1p(_since(profile.session_times, now - 30 * DAY_MS)),
        "online_share": online / orders,
        "refund_share": min(1.0, profile.refunds_millis / revenue) if revenue > 0 else 0.0,
        "log_cart_value": math.log1p(profile.cart_value_millis / 1000),
    }


def as_vector(features: dict[str, float]) -> tuple[float, ...]:
    """Compact form for stored snapshots (in :data:`FEATURES` order)."""
    return tuple(features[name] for name in FEATURES)


def from_vector(vector: tuple[float, ...]) -> dict[str, float]:
    return dict(zip(FEATURES, vector, strict=True))


def _since(times: list[int], start: int) -> int:
    return sum(1 for ts in times if ts > start)
