"""Delivery policy: consent, caps, re-eligibility, budgets, quiet hours (midnight, DST), priority, holdout."""

from __future__ import annotations

from datetime import date, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.contract.dead_letter import iso_ms
from operators.contract.events import parse_ts
from operators.promotions.gate import POLICY_FIELDS, policy_view, same_policy_view
from operators.promotions.inputs import CustomerFacts
from operators.promotions.policy import (
    DAY_MS,
    Candidate,
    ContactHistory,
    DailyBudget,
    DeliveryPolicy,
    consent_allows,
    in_holdout,
    local_epoch_ms,
    quiet_release,
)
from operators.promotions.rules import Cap, Holdout, QuietHours
from tests.promotions.promotion_harness import HOUR, NOON, rule
from tests.promotions.promotion_harness import settings as promo_settings

QUIET = QuietHours(time(21), time(8), "Europe/London", ("email", "push", "sms"))
ZONES = ("Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham")


def in_zone(zone: str | None) -> CustomerFacts:
    return CustomerFacts("c1", True, True, timezone=zone)


# -- consent ---------------------------------------------------------------------------


@pytest.mark.parametrize(("consent", "channels", "channel", "unknown", "allowed"), [
    (True, (), "email", False, True),
    (False, (), "email", True, False),  # an opt-out wins over everything
    (False, (), "till", True, False),
    (None, (), "push", True, True),  # unknown: the configured default
    (None, (), "push", False, False),
    (True, ("push",), "email", False, False),  # consented to push only
    (True, ("push",), "push", False, True),
    (True, ("push",), "till", False, True),  # the till needs marketing consent only
])
def test_consent(consent: bool | None, channels: tuple[str, ...], channel: str, unknown: bool,
                 allowed: bool) -> None:
    assert consent_allows(CustomerFacts("c1", True, consent, channels), channel, unknown) is allowed


# -- caps and re-eligibility -----------------------------------------------------------


def test_caps_allow_again_exactly_at_the_window_edge() -> None:
    caps = (Cap(1, 16 * HOUR), Cap(3, 7 * DAY_MS))
    history = ContactHistory()
    history.record("r", "email", 0, keep_ms=7 * DAY_MS)
    assert history.capped("email", 16 * HOUR - 1, caps)
    assert not history.capped("email", 16 * HOUR, caps)
    assert not history.capped("push", 1, caps)  # per channel
    history.record("r", "email", 16 * HOUR, keep_ms=7 * DAY_MS)
    history.record("r", "email", 32 * HOUR, keep_ms=7 * DAY_MS)
    assert history.capped("email", 48 * HOUR, caps)  # 1 per 16 h passes, 3 per 7 days does not
    assert history.capped("email", 7 * DAY_MS - 1, caps)
    assert not history.capped("email", 7 * DAY_MS, caps)  # the first one has left the 7-day window


def test_reeligibility_boundary() -> None:
    history = ContactHistory()
    history.record("cart", "email", 1_000, keep_ms=0)
    assert not history.eligible("cart", 1_000 + DAY_MS - 1, DAY_MS)
    assert history.eligible("cart", 1_000 + DAY_MS, DAY_MS)
    assert history.eligible("other", 1_001, DAY_MS)


@given(st.lists(st.integers(0, 20 * DAY_MS), max_size=60))
@settings(max_examples=200, deadline=None)
def test_caps_are_never_exceeded_in_any_window(attempts: list[int]) -> None:
    caps = (Cap(1, 16 * HOUR), Cap(3, 7 * DAY_MS))
    history = ContactHistory()
    sent: list[int] = []
    for now in sorted(attempts):
        if not history.capped("email", now, caps):
            history.record("r", "email", now, keep_ms=7 * DAY_MS)
            sent.append(now)
    for end in sent:
        for cap in caps:
            assert sum(1 for t in sent if end - cap.window_ms < t <= end) <= cap.count


# -- budgets ---------------------------------------------------------------------------



def test_budget_is_spent_and_resets_at_utc_midnight() -> None:
    budget = DailyBudget()
    last_ms_of_day = DAY_MS * 20_000 - 1
    budget.spend("r", last_ms_of_day - 5)
    budget.spend("r", last_ms_of_day)
    assert not budget.available("r", 2, last_ms_of_day)
    assert budget.available("r", 2, last_ms_of_day + 1)
    assert budget.available("r", None, last_ms_of_day)  # unlimited
    budget.spend("r", last_ms_of_day + 1)
    assert budget.available("r", 2, last_ms_of_day + 2)


# -- quiet hours -----------------------------------------------------------------------


@pytest.mark.parametrize(("local_now", "release"), [
    ("2026-11-22T20:59:59.999Z", None),
    ("2026-11-22T21:00:00.000Z", "2026-11-23T08:00:00.000Z"),  # across midnight
    ("2026-11-22T23:59:00.000Z", "2026-11-23T08:00:00.000Z"),
    ("2026-11-23T00:00:00.000Z", "2026-11-23T08:00:00.000Z"),  # after midnight: the same morning
    ("2026-11-23T07:59:59.999Z", "2026-11-23T08:00:00.000Z"),
    ("2026-11-23T08:00:00.000Z", None),
])
def test_quiet_hours_across_midnight(local_now: str, release: str | None) -> None:
    result = quiet_release(parse_ts(local_now), in_zone("Europe/London"), QUIET)  # London is UTC in November
    assert (None if result is None else iso_ms(result)) == release


def test_quiet_hours_within_a_day_and_switched_off() -> None:
    lunch = QuietHours(time(13), time(14), "Europe/London", ("email",))
    assert quiet_release(NOON, in_zone(None), lunch) is None
    assert quiet_release(NOON + HOUR, in_zone(None), lunch) == NOON + 2 * HOUR
    off = QuietHours(time(0), time(0), "Europe/London", ("email",))
    assert quiet_release(NOON + 10 * HOUR, in_zone(None), off) is None


@pytest.mark.parametrize(("zone", "now", "release"), [
    # Clocks go forward overnight: 21:00 GMT to 08:00 BST is ten hours, not eleven.
    ("Europe/London", "2026-03-28T23:00:00.000Z", "2026-03-29T07:00:00.000Z"),
    # Clocks go back overnight: 22:00 BST to 08:00 GMT.
    ("Europe/London", "2026-10-24T21:00:00.000Z", "2026-10-25T08:00:00.000Z"),
    ("America/New_York", "2026-03-08T03:00:00.000Z", "2026-03-08T12:00:00.000Z"),
    ("America/New_York", "2026-11-01T02:00:00.000Z", "2026-11-01T13:00:00.000Z"),
])
def test_quiet_hours_across_a_dst_change(zone: str, now: str, release: str) -> None:
    assert iso_ms(quiet_release(parse_ts(now), in_zone(zone), QUIET) or 0) == release


def test_a_quiet_hours_end_that_does_not_exist_is_the_moment_of_the_change() -> None:
    quiet = QuietHours(time(22), time(2, 30), "America/New_York", ("email",))
    # 01:00 EST on the night 02:00 EST becomes 03:00 EDT: released at the change.
    assert iso_ms(quiet_release(parse_ts("2026-03-08T06:00:00Z"), in_zone("America/New_York"), quiet) or 0) \
        == "2026-03-08T07:00:00.000Z"
    # A local time that happens twice (clocks going back) is its first occurrence.
    assert iso_ms(local_epoch_ms(date(2026, 11, 1), time(1, 30), ZoneInfo("America/New_York"))) \
        == "2026-11-01T05:30:00.000Z"


@given(st.integers(1_700_000_000_000, 1_900_000_000_000), st.sampled_from(ZONES),
       st.integers(0, 23), st.integers(0, 23))
@settings(max_examples=300, deadline=None)
def test_quiet_release_is_the_first_allowed_instant(ts: int, zone: str, start: int, end: int) -> None:
    quiet = QuietHours(time(start, 30), time(end), "Europe/London", ("email",))
    facts = in_zone(zone)
    release = quiet_release(ts, facts, quiet)
    if release is None:
        return
    assert release > ts
    assert quiet_release(release, facts, quiet) is None
    assert quiet_release(release - 1, facts, quiet) is not None


# -- priority and the whole decision ---------------------------------------------------


def candidate(rule_name: str, created_at: int = NOON, cause: str = "e1") -> Candidate:
    return Candidate.create(rule_name, "c1", cause, created_at, (), "test")


@given(st.permutations(range(4)))
def test_the_winner_does_not_depend_on_candidate_order(order: list[int]) -> None:
    policy = DeliveryPolicy(promo_settings({"a": rule("cart", priority=2), "b": rule("cart", priority=1),
                                            "c": rule("cart", priority=1)}))
    pool = [candidate("a"), candidate("b"), candidate("c"), candidate("b", NOON - 5, "e0")]
    decision = policy.decide(NOON, in_zone("Europe/London"), ContactHistory(), [pool[i] for i in order])
    assert decision.winner == pool[1]  # priority 1, rule name "b" before "c", the most recent trigger
    assert sorted(reason for _, reason in decision.suppressed) == ["outranked"] * 3


def test_a_suppressed_candidate_does_not_take_part_in_priority() -> None:
    policy = DeliveryPolicy(promo_settings({"first": rule("cart", priority=1, channel="sms"),
                                            "second": rule("cart", priority=2)}))
    facts = CustomerFacts("c1", True, True, ("email",), "Europe/London")
    decision = policy.decide(NOON, facts, ContactHistory(), [candidate("first"), candidate("second")])
    assert decision.winner is not None and decision.winner.rule == "second"
    assert [(c.rule, reason) for c, reason in decision.suppressed] == [("first", "consent")]


def test_unknown_rules_are_suppressed_as_disabled() -> None:
    policy = DeliveryPolicy(promo_settings({"on": rule("cart")}))
    decision = policy.decide(NOON, in_zone(None), ContactHistory(), [candidate("gone")])
    assert decision.winner is None and decision.suppressed[0][1] == "disabled"


# -- holdout ---------------------------------------------------------------------------


def test_holdout_is_deterministic_and_close_to_its_share() -> None:
    holdout = Holdout(10, "spring")
    keys = [f"customer-{i}" for i in range(20_000)]
    drawn = [in_holdout(key, holdout) for key in keys]
    assert drawn == [in_holdout(key, holdout) for key in keys]
    assert 0.09 < sum(drawn) / len(keys) < 0.11
    other = [in_holdout(key, Holdout(10, "autumn")) for key in keys]
    assert drawn != other  # a new salt draws a new group


@given(st.floats(0, 100), st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=50))
def test_a_larger_percent_only_adds_customers_to_the_holdout(percent: float, keys: list[str]) -> None:
    for key in keys:
        if in_holdout(key, Holdout(percent, "s")):
            assert in_holdout(key, Holdout(min(100.0, percent + 5), "s"))


# -- the policy view ---------------------------------------------------------------------

_FACTS = st.builds(
    CustomerFacts,
    st.sampled_from(["c1", "c2"]),
    st.booleans(),
    st.sampled_from([None, True, False]),
    st.sampled_from([(), ("email",), ("push", "sms")]),
    st.sampled_from([None, "Europe/London"]),
    st.sampled_from([None, "1990-05-01"]),
    st.sampled_from([None, "S1"]),
    st.integers(0, 2),
    st.integers(0, 2),
    st.sampled_from([None, 5]),
    st.sampled_from([(), (("MUG", 1, 2_500),)]),
)


@given(_FACTS, _FACTS)
def test_same_policy_view_is_comparing_the_views(told: CustomerFacts, facts: CustomerFacts) -> None:
    view = policy_view(told)
    assert same_policy_view(view, facts) == (view == policy_view(facts))


def test_the_policy_view_keeps_exactly_the_policy_fields() -> None:
    facts = CustomerFacts("c1", True, True, ("email",), "Europe/London", "1990-05-01", "S1", 3, 9_000, 7,
                          (("MUG", 1, 2_500),))  # fmt: skip
    kept = {f: getattr(facts, f) for f in POLICY_FIELDS}
    assert policy_view(facts) == CustomerFacts(**kept)
