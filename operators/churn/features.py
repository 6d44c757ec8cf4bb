"""The churn model's feature vector, read off a profile at an event time.

Counts, amounts and durations are heavy-tailed, so most features are
``log1p``-scaled; the online scaler in the model then centres them. :func:`rfm`
gives the raw recency, frequency and monetary values published with each score.

Two features read recency against the customer's own purchase rhythm, with a
prior that also holds for a one-time buyer (whose gap between purchases is
unknown): the usual gap is estimated as ``(span + H) / orders``, the span
between the first and last purchase plus one pseudo-gap of one churn horizon
``H``, over the number of purchases. A one-time buyer's gap is then ``H`` and
``log_recency_over_gap`` is ``log1p(recency / H)``, a real recency signal
(with the gap set to the tenure, as before, it was about 1 for all of them).
``missed_purchases`` is the BG/NBD evidence of having left, ``orders *
log1p(recency / (span + H))``: the longer the silence against the customer's
own rate, the higher.

>>> from operators.customers.profile import CustomerProfile

>>> from operators.time.units import DAY_MS
>>> profile = CustomerProfile(orders_by_channel={"store": 2}, revenue_by_channel={"store": 50_000},
...                           purchase_times=[0, 10 * DAY_MS], first_purchase=0, last_purchase=10 * DAY_MS)
>>> rfm(profile, 40 * DAY_MS)
{'recency_days': 30.0, 'frequency': 2, 'monetary': 50.0}
>>> features = churn_features(profile, 40 * DAY_MS, horizon_days=90)
>>> round(features["log_recency_over_gap"], 3), round(features["missed_purchases"], 3)  # gap: (10 + 90) / 2 days
(0.47, 0.525)
>>> one_time = CustomerProfile(orders_by_channel={"web": 1}, revenue_by_channel={"web": 9_000},
...                            purchase_times=[0], first_purchase=0, last_purchase=0)
>>> [round(churn_features(one_time, d * DAY_MS, horizon_days=90)["log_recency_over_gap"], 2) for d in (9, 90, 360)]
[0.1, 0.69, 1.61]
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right

from operators.contract.money import from_millis
from operators.customers.profile import CustomerProfile
from operators.time.units import DAY_MS

#: The model's features, in a fixed order (snapshots store values in this order).
FEATURES = (
    "log_recency_days",
    "log_frequency",
    "log_avg_order_value",
    "log_monetary",
    "log_tenure_days",
    "log_recency_over_gap",
    "missed_purchases",
    "one_time_buyer",
    "log_orders_30d",
    "log_orders_90d",
    "log_days_since_seen",
    "log_sessions_30d",
    "online_share",
    "refund_share",
    "log_cart_value",
    "log_lines_per_order",
)
#: Floats per stored snapshot.
WIDTH = len(FEATURES)


def rfm(profile: CustomerProfile, now: int) -> dict[str, float | int]:
    """Recency (days since the last purchase), frequency (purchases) and monetary (net spend)."""
    assert profile.last_purchase is not None
    return {
        "recency_days": round(max(0, now - profile.last_purchase) / DAY_MS, 3),
        "frequency": profile.orders,
        "monetary": float(from_millis(profile.lifetime_value_millis)),
    }


def churn_features(profile: CustomerProfile, now: int, horizon_days: float = 90.0) -> dict[str, float]:
    """The feature vector of a customer with at least one purchase, at event time ``now``.

    ``horizon_days`` (the churn horizon) is the prior gap between purchases (see the module doc).
    """
    return dict(zip(FEATURES, feature_values(profile, now, horizon_days), strict=True))


def feature_values(profile: CustomerProfile, now: int, horizon_days: float) -> list[float]:
    """:func:`churn_features`' values, in :data:`FEATURES` order."""
    assert profile.last_purchase is not None and profile.first_purchase is not None
    orders = max(profile.orders, 1)
    recency = max(0, now - profile.last_purchase) / DAY_MS
    tenure = max(0, now - profile.first_purchase) / DAY_MS
    span = (profile.last_purchase - profile.first_purchase) / DAY_MS + horizon_days
    revenue = profile.revenue_millis
    net = revenue - profile.refunds_millis  # the profile's lifetime value, without summing the channels again
    online = orders - profile.orders_by_channel.get("store", 0)
    seen = profile.last_seen if profile.last_seen is not None else profile.last_purchase
    purchases = profile.purchase_times
    return [
        math.log1p(recency),
        math.log1p(orders),
        math.log1p(max(0, revenue) / orders / 1000),
        math.log1p(max(0, net) / 1000),
        math.log1p(tenure),
        math.log1p(recency * orders / span),
        orders * math.log1p(recency / span),
        1.0 if orders == 1 else 0.0,
        math.log1p(_since(purchases, now - 30 * DAY_MS)),
        math.log1p(_since(purchases, now - 90 * DAY_MS)),
        math.log1p(max(0, now - seen) / DAY_MS),
        math.log1p(_since(profile.session_times, now - 30 * DAY_MS)),
        online / orders,
        min(1.0, profile.refunds_millis / revenue) if revenue > 0 else 0.0,
        math.log1p(profile.cart_value_millis / 1000) if profile.cart else 0.0,
        math.log1p(profile.purchase_lines / orders),
    ]


def unpack(packed: array, at: int = 0) -> dict[str, float]:
    """The features of the snapshot stored at ``packed[at : at + WIDTH]``."""
    return dict(zip(FEATURES, packed[at : at + WIDTH].tolist(), strict=True))


def _since(times: list[int], start: int) -> int:
    """How many of ``times`` (ascending) are after ``start``."""
    return len(times) - bisect_right(times, start)
