"""Attribution: coupon or window, one conversion per promotion, exact revenue, uplift; and in the domain."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from operators.contract.events import Event
from operators.promotions.attribution import OpenPromotion, Purchase, attribute, purchase_of, uplift
from operators.promotions.inputs import ChurnScore
from tests.promotions.promotion_harness import (
    DAY,
    HOUR,
    NOON,
    Harness,
    activity,
    facts,
    order,
    rule,
    settings,
)

WINDOW = 3 * DAY


def promo(pid: str, sent_at: int, holdout: bool = False, expires_in: int = DAY) -> OpenPromotion:
    return OpenPromotion(pid, "r", f"CF-{pid}", holdout, sent_at, sent_at + WINDOW, sent_at + expires_in)


def test_a_purchase_converts_the_latest_promotion_whose_window_holds_it() -> None:
    open_ = [promo("p1", 0), promo("p2", HOUR), promo("p3", 10 * DAY)]
    found = attribute(open_, Purchase(2 * HOUR, 1, None))
    assert found is not None and found[0].promotion_id == "p2" and found[1] == "window"


def test_window_edges() -> None:
    open_ = [promo("p1", 0)]
    assert attribute(open_, Purchase(0, 1, None)) is None  # not at the moment it was sent
    assert attribute(open_, Purchase(WINDOW, 1, None)) is not None
    assert attribute(open_, Purchase(WINDOW + 1, 1, None)) is None


def test_the_redeemed_coupon_wins_until_it_expires() -> None:
    open_ = [promo("p1", 0, expires_in=10 * DAY), promo("p2", HOUR)]
    found = attribute(open_, Purchase(2 * HOUR, 1, "CF-p1"))
    assert found is not None and (found[0].promotion_id, found[1]) == ("p1", "coupon")
    late = attribute(open_, Purchase(10 * DAY + 1, 1, "CF-p1"))
    assert late is None  # expired coupon and both windows closed
    unknown = attribute(open_, Purchase(2 * HOUR, 1, "CF-other"))
    assert unknown is not None and unknown[0].promotion_id == "p2"


def test_purchase_of_reads_orders_and_till_sales_exactly() -> None:
    sale = Event("e1", "sale", "pos", 7, {"total": 0.1, "coupon_code": "CF-X", "lines": []})
    assert purchase_of(sale) == Purchase(7, 100, "CF-X")
    assert purchase_of(Event("e2", "return", "pos", 7, {"total": 5, "lines": []})) is None


def test_uplift_per_rule_and_missing_groups() -> None:
    report = uplift({("a", "treated"): 200, ("a", "holdout"): 20, ("b", "treated"): 10},
                    {("a", "treated"): 30, ("a", "holdout"): 2, ("b", "treated"): 1})
    assert (report["a"].treated_rate, report["a"].holdout_rate, report["a"].uplift) == (0.15, 0.1, 0.05)
    assert abs((report["a"].relative or 0) - 0.5) < 1e-9
    assert report["b"].holdout_rate is None and report["b"].uplift is None and report["b"].treated_rate == 0.1


@given(st.lists(st.integers(1, 10**9), max_size=50))
def test_attributed_revenue_is_exact(totals_millis: list[int]) -> None:
    h = Harness(settings({"churn": rule("churn", expiry="400d")}, attribution_window="400d"))
    h.feed(activity(facts(), "p0", "profile_updated", NOON - 1, customer_id="c1"))
    for i, millis in enumerate(totals_millis):
        h.feed(ChurnScore("c1", NOON + 2 * i * HOUR, 0.9, f"s{i}"), ChurnScore("c1", NOON + (2 * i + 1) * HOUR, 0.1,
                                                                               f"t{i}"))
        h.feed(order(facts(orders=i + 1), f"o{i}", NOON + (2 * i + 1) * HOUR + 1, total=millis / 1000))
    assert sum(h.conversions.revenue_millis.values()) == sum(totals_millis)
    assert sum(h.conversions.conversions.values()) == len(totals_millis) == len(h.records)


def test_in_the_domain_a_till_coupon_converts_its_promotion_once_and_holdout_converts_by_window() -> None:
    h = Harness(settings({"tier": rule("tier")}))
    h.feed(order(facts(orders=1, lifetime_value_millis=600_000), "o1", NOON, total=600))
    [record] = [out.value for out in h.advance(NOON + 1)]
    till = activity(facts(orders=2), "s1", "sale", NOON + DAY, store_id="S1", receipt_id="r1", loyalty_id="L1",
                    lines=[{"sku": "MUG", "qty": 2, "unit_price": 12.345}], total=24.69,
                    coupon_code=record["coupon_code"])
    h.feed(till, order(facts(orders=3), "o3", NOON + 2 * DAY, total=5))
    assert h.conversions.conversions == {("tier", "treated"): 1}
    assert h.conversions.redemptions == {"tier": 1}
    assert h.conversions.revenue_millis == {("tier", "treated"): 24_690}

    control = Harness(settings({"tier": rule("tier")}, holdout={"percent": 100, "salt": "s"}))
    control.feed(order(facts(orders=1, lifetime_value_millis=600_000), "o1", NOON, total=600),
                 order(facts(orders=2), "o2", NOON + DAY, total=7.5))
    assert [r["holdout"] for r in control.records] == [True]
    assert control.conversions.conversions == {("tier", "holdout"): 1}
    assert control.conversions.revenue_millis == {("tier", "holdout"): 7_500}


def test_a_customer_who_never_buys_keeps_only_the_promotions_that_can_still_convert() -> None:
    # Promotions are forgotten once closed, also when no purchase comes to close them: state stays bounded.
    h = Harness(settings({"churn": rule("churn", expiry="2d")}, attribution_window="3d"))
    h.feed(activity(facts(), "p0", "profile_updated", NOON - 1, customer_id="c1"))
    for i in range(40):
        day = NOON + i * DAY
        h.feed(ChurnScore("c1", day, 0.9, f"s{i}"), ChurnScore("c1", day + HOUR, 0.1, f"t{i}"))
    assert len(h.records) == 40
    gate = h.domain().gate
    assert gate is not None
    open_ = gate._recipients["c1"].open
    assert [p.sent_at for p in open_] == [NOON + i * DAY for i in range(36, 40)]  # closed 3 days after sending
    h.feed(order(facts(orders=1), "o1", NOON + 39 * DAY + 2 * HOUR, total=10))
    assert h.conversions.conversions == {("churn", "treated"): 1}  # the latest one converts, as before
