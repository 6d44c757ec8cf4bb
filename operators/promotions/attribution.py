"""Attribution: which promotion a purchase converts, and conversion and uplift per rule.

A recorded promotion (treated or holdout) stays open for conversions until
both its attribution window (``sent_at < ts <= sent_at + window``) and its
coupon (``ts <= expires_at``) have closed. A purchase (an online order or a
till sale) converts at most one open promotion of its customer, and each
promotion converts at most once:

1. the promotion whose coupon the purchase redeemed, if it is still valid;
2. else the latest promotion whose window holds the purchase.

Its revenue (the purchase total, exact milli-units) is the promotion's
attributed revenue. Uplift per rule compares the conversion rates of the
treated and the holdout groups (:func:`uplift`, a pure function of counts).

>>> day = 86_400_000
>>> promos = [OpenPromotion("p1", "cart", "CF-A", False, 0, 3 * day, 2 * day),
...           OpenPromotion("p2", "win_back", "CF-B", True, day, 4 * day, 15 * day)]
>>> promo, via = attribute(promos, Purchase(2 * day, 25_000, None))
>>> promo.promotion_id, via
('p2', 'window')
>>> promo, via = attribute(promos, Purchase(2 * day, 25_000, "CF-A"))
>>> promo.promotion_id, via
('p1', 'coupon')
>>> uplift({("cart", "treated"): 90, ("cart", "holdout"): 10},
...        {("cart", "treated"): 18, ("cart", "holdout"): 1})["cart"].uplift
0.1
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from operators.contract.events import Event
from operators.contract.money import to_millis
from operators.promotions.inputs import PURCHASE_TYPES
from operators.state.pickling import pickled_as_call

__all__ = [
    "GROUPS",
    "ConversionCounts",
    "OpenPromotion",
    "Purchase",
    "Uplift",
    "attribute",
    "group_of",
    "purchase_of",
    "uplift",
]

GROUPS = ("treated", "holdout")


@pickled_as_call
@dataclass(frozen=True, slots=True)
class OpenPromotion:
    """A recorded promotion that can still be converted."""

    promotion_id: str
    rule: str
    coupon_code: str
    holdout: bool
    sent_at: int
    window_end: int
    expires_at: int

    @property
    def closes_at(self) -> int:
        """After this event time nothing can convert it any more."""
        return max(self.window_end, self.expires_at)


@dataclass(frozen=True, slots=True)
class Purchase:
    """A purchase: event time, total in milli-units, the coupon it redeemed (if any)."""

    ts: int
    revenue_millis: int
    coupon_code: str | None


def purchase_of(event: Event) -> Purchase | None:
    """The purchase an ``order_placed`` or till ``sale`` is (None for any other event).

    >>> purchase_of(Event("e1", "sale", "pos", 5, {"total": 12.5, "coupon_code": "CF-A"}))
    Purchase(ts=5, revenue_millis=12500, coupon_code='CF-A')
    """
    if event.type not in PURCHASE_TYPES:
        return None
    coupon = event.body.get("coupon_code")
    return Purchase(event.ts, to_millis(event.body["total"]), coupon if isinstance(coupon, str) else None)


def attribute(open_promotions: Iterable[OpenPromotion], purchase: Purchase) -> tuple[OpenPromotion, str] | None:
    """The promotion ``purchase`` converts and how (``coupon`` or ``window``), or None."""
    latest: OpenPromotion | None = None
    for promo in open_promotions:
        if purchase.coupon_code is not None and promo.coupon_code == purchase.coupon_code \
                and purchase.ts <= promo.expires_at:
            return promo, "coupon"
        in_window = promo.sent_at < purchase.ts <= promo.window_end
        if in_window and (latest is None or (promo.sent_at, promo.promotion_id) > (latest.sent_at,
                                                                                    latest.promotion_id)):
            latest = promo
    return None if latest is None else (latest, "window")


def group_of(holdout: bool) -> str:
    """``holdout`` or ``treated``: the group label of the metrics."""
    return "holdout" if holdout else "treated"


@dataclass
class ConversionCounts:
    """Conversions and attributed revenue per ``(rule, group)``; coupon redemptions per rule."""

    conversions: Counter[tuple[str, str]] = field(default_factory=Counter)
    revenue_millis: Counter[tuple[str, str]] = field(default_factory=Counter)
    redemptions: Counter[str] = field(default_factory=Counter)

    def add(self, promo: OpenPromotion, via: str, revenue_millis: int) -> None:
        label = (promo.rule, group_of(promo.holdout))
        self.conversions[label] += 1
        self.revenue_millis[label] += revenue_millis
        if via == "coupon":
            self.redemptions[promo.rule] += 1


@dataclass(frozen=True, slots=True)
class Uplift:
    """Conversion of the treated and the holdout group of one rule.

    ``uplift`` is the absolute difference of the rates (treated - holdout);
    ``relative`` is ``uplift / holdout_rate``. A rate with no promotions
    behind it is None, and so is anything computed from it.
    """

    rule: str
    treated: int
    treated_conversions: int
    holdout: int
    holdout_conversions: int
    treated_rate: float | None
    holdout_rate: float | None
    uplift: float | None
    relative: float | None


def uplift(recorded: Mapping[tuple[str, str], int], conversions: Mapping[tuple[str, str], int]) -> dict[str, Uplift]:
    """Per rule, the treated and holdout conversion rates and the uplift, from cumulative counts.

    ``recorded`` and ``conversions`` are keyed by ``(rule, group)``, group in
    :data:`GROUPS` (``recorded`` = promotions sent, and recorded as holdout).
    """
    rules = sorted({rule for rule, _ in recorded} | {rule for rule, _ in conversions})
    report: dict[str, Uplift] = {}
    for rule in rules:
        treated, holdout = recorded.get((rule, "treated"), 0), recorded.get((rule, "holdout"), 0)
        t_conv, h_conv = conversions.get((rule, "treated"), 0), conversions.get((rule, "holdout"), 0)
        t_rate = t_conv / treated if treated else None
        h_rate = h_conv / holdout if holdout else None
        diff = None if t_rate is None or h_rate is None else round(t_rate - h_rate, 12)
        relative = diff / h_rate if diff is not None and h_rate else None
        report[rule] = Uplift(rule, treated, t_conv, holdout, h_conv, t_rate, h_rate, diff, relative)
    return report
