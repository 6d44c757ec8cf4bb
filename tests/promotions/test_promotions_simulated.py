"""Cart abandonment on simulated traffic, and its edges, through every domain stage in-process (LocalFlow).

No Kafka: ``flows.local.LocalFlow`` runs the flow's own stages (identity,
customers, churn, inventory, anomalies, promotions) on de-duplicated events.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime, time
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from channelflow.config import Config, load_config, load_promotions
from channelflow.simulator import SimulationSettings, simulate
from channelflow.simulator.shopping import CHECKOUT_RATE, ORDER_RATE
from flows.main import domain_specs
from operators.contract.events import parse_ts
from operators.promotions.gate import PromotionGate
from operators.promotions.rules import PromotionSettings
from operators.promotions.triggers.cart_abandoned import CartAbandoned
from tests.customers.test_customers import click, crm, order
from tests.flow_harness import records_of, run_local

CONFIG: Config = load_config(environ={})
RULES: PromotionSettings = load_promotions(environ={})
[CART_RULE] = RULES.enabled("cart_abandoned")
assert isinstance(CART_RULE.params, CartAbandoned)
DELAY_MS: int = CART_RULE.params.delay_ms
QUIET = RULES.policy.quiet_hours
HOUR_MS = 3_600_000
CART_EVENTS = ("add_to_cart", "remove_from_cart")
#: Every final decision on a fired trigger; quiet_hours_delayed is not final (decided again later).
NOT_A_DECISION = ("cancelled", "quiet_hours_delayed", "waitlist_full")


class Run:
    """Events through LocalFlow with every domain spec; promotions records and drained counts."""

    def __init__(self, bodies: list[dict[str, Any]], until: int) -> None:
        self.flow = run_local(domain_specs(CONFIG, RULES), CONFIG.flow.shards, bodies, until)
        self.events = {b["event_id"]: b for b in bodies}
        self.records = records_of(self.flow, "promotions")
        self.outcomes: Counter[tuple[str, str]] = Counter()
        for domain in self.flow.domains("promotion_gate"):
            assert isinstance(domain, PromotionGate)
            self.outcomes.update(domain.drain().outcomes)
        self.decided = records_of(self.flow, "promotion_decisions")

    def timezone(self, key: str) -> str:
        for domain in self.flow.domains("promotions"):
            facts = domain.customer(key)
            if facts is not None:
                return facts.timezone or QUIET.default_timezone
        return QUIET.default_timezone

    def decisions(self, rule: str) -> int:
        return sum(n for (r, outcome), n in self.outcomes.items() if r == rule and outcome not in NOT_A_DECISION)


@cache
def simulated() -> tuple[list[dict[str, Any]], Run]:
    log = list(simulate(SimulationSettings(seed=5, customers=400, days=20, anomalies=False)))
    return log, Run(log, log[-1]["ts"] + 2 * HOUR_MS)


def _quiet(local: time) -> bool:
    start, end = QUIET.start, QUIET.end
    return (start <= local or local < end) if end < start else start <= local < end


def test_cart_reminders_come_the_configured_delay_after_the_last_cart_change() -> None:
    log, run = simulated()
    cart_changes: dict[str, list[int]] = defaultdict(list)  # account -> times of its cart events
    for body in log:
        if body["type"] in CART_EVENTS and body.get("customer_id"):
            cart_changes[body["customer_id"]].append(body["ts"])
    reminders = [r for r in run.records if r["rule"] == CART_RULE.name]
    assert len(reminders) >= 15
    delayed = 0
    for record in reminders:
        cause = run.events[record["cause_event_id"]]
        created, sent = parse_ts(record["created_at"]), parse_ts(record["ts"])
        # A cart change (a login merges the device's cart into the account's).
        assert cause["type"] in (*CART_EVENTS, "login"), cause
        assert created == cause["ts"] + DELAY_MS
        # Nothing changed the account's cart between its cause and the reminder.
        assert not [t for t in cart_changes[record["customer_id"]] if cause["ts"] < t <= created]
        zone = ZoneInfo(run.timezone(record["customer_id"]))
        local_created = datetime.fromtimestamp(created / 1000, zone)
        if sent == created:
            assert not _quiet(local_created.time())
        else:  # created in quiet hours: released when they end, that day or the next, local time
            delayed += 1
            assert _quiet(local_created.time())
            local_sent = datetime.fromtimestamp(sent / 1000, zone)
            assert local_sent.time() == QUIET.end and sent - created < 24 * HOUR_MS
    # Every late record was delayed once; a delayed one may still be stopped at its release.
    assert delayed <= run.outcomes[CART_RULE.name, "quiet_hours_delayed"]
    assert 0 < delayed < len(reminders)


def _abandoned_sessions(log: list[dict[str, Any]]) -> tuple[int, int, int, int]:
    """From the events alone: carted sessions, those without an order; logged-in carted sessions,
    and those whose account neither bought nor changed its cart within the delay after the last change."""
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    purchases: dict[str, list[int]] = defaultdict(list)
    changes: dict[str, list[int]] = defaultdict(list)
    devices: dict[str, str] = {}  # anonymous id -> the account that last logged in on it
    stitched: dict[str, str] = {}  # session -> the account its device was known as at its start
    for body in log:
        if "session_id" in body:
            sessions[body["session_id"]].append(body)
            if body["anonymous_id"] in devices:
                stitched.setdefault(body["session_id"], devices[body["anonymous_id"]])
            if body.get("customer_id"):
                devices[body["anonymous_id"]] = body["customer_id"]
        if body["type"] == "order_placed" and body.get("customer_id"):
            purchases[body["customer_id"]].append(body["ts"])
        if body["type"] in CART_EVENTS and body.get("customer_id"):
            changes[body["customer_id"]].append(body["ts"])
    carted = unordered = logged_in = abandoned = 0
    for session, events in sessions.items():
        cart_times = [e["ts"] for e in events if e["type"] in CART_EVENTS]
        if not cart_times:
            continue
        carted += 1
        unordered += not any(e["type"] == "order_placed" for e in events)
        account = next((e["customer_id"] for e in events if e.get("customer_id")), stitched.get(session))
        if account is None:
            continue
        logged_in += 1
        last = max(cart_times)
        deadline = last + DELAY_MS
        if not any(last < t <= deadline for t in purchases[account] + changes[account]):
            abandoned += 1
    return carted, unordered, logged_in, abandoned


def test_cart_abandonment_decisions_track_the_simulators_abandonment_rate() -> None:
    log, run = simulated()
    carted, unordered, logged_in, abandoned = _abandoned_sessions(log)
    # The simulator abandons a cart unless the session checks out and then orders.
    rate = 1 - CHECKOUT_RATE * ORDER_RATE
    assert abs(unordered / carted - rate) <= 3 * math.sqrt(rate * (1 - rate) / carted), (unordered, carted)
    # Logged-in sessions skew to orders (checkout forces a login), so their share is lower. The
    # engine decides once per abandoned account cart; it sees a few more than the sessions with an
    # account id: an anonymous cart merged into the account at a later login re-arms the trigger
    # (cause: the login). Seeded, so the figures are fixed: 84 decisions for 75 such sessions of 114.
    decisions = run.decisions(CART_RULE.name)
    assert abandoned <= decisions <= 1.15 * abandoned + 3, (decisions, abandoned, logged_in)
    assert abandoned / logged_in < unordered / carted


# -- edges, with the real customer stages: consent and erasure arrive as CRM events

NIGHT = 1_795_381_200_000  # 2026-11-22T21:00:00Z: 21:00 in London, quiet hours start


def _cart_bodies(start: int, customer: str = "C1") -> list[dict[str, Any]]:
    consent = crm("consent_changed", start - HOUR_MS, customer, marketing=True)
    login = click("login", start, "dev1", customer)
    add = click("add_to_cart", start + 1_000, "dev1", customer, sku="MUG", qty=1, price=9.5)
    return [_body(e) for e in (consent, login, add)]


def _body(e: Any) -> dict[str, Any]:
    return {"event_id": e.event_id, "type": e.type, "ts": e.ts, **e.body}


def test_erasure_between_trigger_and_send_stops_the_promotion() -> None:
    start = NIGHT  # carted at 21:00:01 London: the trigger fires at 22:00:01, in quiet hours, held to 08:00
    carted = _cart_bodies(start)
    morning = start + 12 * HOUR_MS
    kept = Run(carted, morning)
    [record] = [r for r in kept.records if r["rule"] == CART_RULE.name]
    assert parse_ts(record["created_at"]) == start + 1_000 + DELAY_MS
    assert parse_ts(record["ts"]) == NIGHT + 11 * HOUR_MS  # 08:00 London
    erased = Run([*carted, _body(crm("erasure_requested", start + 3 * HOUR_MS, "C1"))], morning)
    assert erased.outcomes[CART_RULE.name, "quiet_hours_delayed"] == 1
    assert not [r for r in erased.records if r["customer_id"] == "C1"]
    assert erased.outcomes[CART_RULE.name, "suppressed_erased"] == 1


def test_an_order_by_the_abandonment_deadline_cancels_it_and_one_after_is_too_late() -> None:
    start = NIGHT - 10 * HOUR_MS  # 11:00 London: no quiet hours
    deadline = start + 1_000 + DELAY_MS
    for at, promoted in ((deadline - 1, False), (deadline, False), (deadline + 1, True)):
        bought = order(at, "dev1", "C1", 9.5)
        run = Run([*_cart_bodies(start), _body(bought)], deadline + HOUR_MS)
        reminders = [r for r in run.records if r["rule"] == CART_RULE.name]
        assert bool(reminders) == promoted, at - deadline
        assert run.outcomes[CART_RULE.name, "cancelled"] == (0 if promoted else 1)
        if promoted:
            assert parse_ts(reminders[0]["ts"]) == deadline
