"""The ``promotion-decisions`` topic: every decision on record with its reason, so a marketer can answer
"why did this customer get nothing?"; and exact budgets and waitlists through the flow's own stages."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from channelflow.config import Config, load_config, load_promotions
from channelflow.simulator import SimulationSettings, simulate
from flows.config import OUTPUT_TOPIC_KEYS
from flows.main import domain_specs
from flows.topology import PROMOTION_GATE
from operators.contract.dead_letter import iso_ms
from operators.promotions.gate import DECISION_FIELDS, DECISIONS_TOPIC, OUTCOMES, PromotionGate
from operators.promotions.inputs import ChurnScore, StockLevel
from operators.promotions.policy import SUPPRESSION_REASONS, in_holdout
from operators.promotions.rules import Holdout
from tests.customers.test_customers import click, crm
from tests.flow_harness import records_of, run_local
from tests.promotions.promotion_harness import (
    DAY,
    HOUR,
    MINUTE,
    NOON,
    Harness,
    activity,
    facts,
    rule,
    settings,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"


def why_nothing(decisions: list[dict[str, Any]], customer: str) -> list[tuple[str, str | None]]:
    """The marketer's question, answered from the topic: each decision about ``customer`` and its reason."""
    return [(d["rule"], d["reason"]) for d in decisions if d["customer_id"] == customer]


def test_a_marketer_finds_why_each_customer_got_nothing() -> None:
    caps = {"email": [{"count": 1, "window": "1d"}], "push": [], "sms": [], "till": []}
    promo = settings({"churn": rule("churn", daily_budget=2), "restock": rule("restock", waitlist_size=1)},
                     frequency_caps=caps)
    h = Harness(promo, shards=4)
    scored = ("capped", "opted-out", "ok-1", "ok-2", "late")
    h.feed(StockLevel("MUG", NOON - HOUR, 0, "inv1"),
           activity(facts("opted-out", marketing_consent=False), "p0", "profile_updated", NOON - MINUTE,
                    customer_id="opted-out"),
           *(activity(facts(key), f"p-{key}", "profile_updated", NOON - MINUTE, customer_id=key)
             for key in scored if key != "opted-out"),
           activity(facts("first"), "v1", "product_view", NOON - 30 * MINUTE, customer_id="first", sku="MUG"),
           activity(facts("second"), "v2", "product_view", NOON - 20 * MINUTE, customer_id="second", sku="MUG"),
           ChurnScore("capped", NOON, 0.9, "s0"), ChurnScore("capped", NOON + MINUTE, 0.1, "s1"),
           *(ChurnScore(key, NOON + 2 * MINUTE + n, 0.9, f"s-{key}") for n, key in enumerate(scored)),
           StockLevel("MUG", NOON + HOUR, 7, "inv2"))
    h.advance(NOON + DAY)
    assert sorted(r["customer_id"] for r in h.records) == ["capped", "first", "ok-1"]
    assert why_nothing(h.decisions, "opted-out") == [("churn", "consent")]
    assert why_nothing(h.decisions, "capped") == [("churn", None), ("churn", "cap")]  # sent at noon, then capped
    assert why_nothing(h.decisions, "ok-2") == [("churn", "budget")]  # "capped" and "ok-1" spent the day's 2
    assert why_nothing(h.decisions, "late") == [("churn", "budget")]
    assert why_nothing(h.decisions, "second") == [("restock", "waitlist_full")]
    [budget] = [d for d in h.decisions if d["customer_id"] == "ok-2"]
    assert budget["outcome"] == "suppressed_budget" and budget["trigger"] == "churn_risk"
    assert budget["cause_event_id"] == "s-ok-2" and budget["promotion_id"] is not None
    assert budget["detail"] == "the daily budget of 2 for 2026-11-22 (UTC) is spent"
    [capped] = [d for d in h.decisions if d["reason"] == "cap"]
    assert capped["detail"] == "email frequency cap 1 per 1d is full"
    for decision in h.decisions:
        assert tuple(decision) == DECISION_FIELDS


def test_every_counted_outcome_is_a_record_keyed_by_customer_and_sent_ones_match_the_promotions() -> None:
    quiet = {"start": "21:00", "end": "08:00", "default_timezone": "Europe/London", "channels": ["email"]}
    h = Harness(settings({"cart": rule("cart", daily_budget=1), "tier": rule("tier", priority=5)},
                         quiet_hours=quiet), shards=4)
    cart = (("MUG", 1, 9_500),)
    h.feed(*(activity(facts(f"c{n}", cart=cart), f"a{n}", "add_to_cart", NOON + 9 * HOUR + n, customer_id=f"c{n}",
                      sku="MUG", qty=1, price=9.5) for n in range(3)),
           activity(facts("c9", cart=cart), "a9", "add_to_cart", NOON, customer_id="c9", sku="MUG", qty=1, price=9.5),
           activity(facts("c9", orders=1), "o9", "order_placed", NOON + MINUTE, customer_id="c9", order_id="o9",
                    lines=[{"sku": "MUG", "qty": 1, "unit_price": 9.5}], total=9.5, fulfillment={"method": "ship"}))
    h.advance(NOON + 2 * DAY)
    assert Counter((d["rule"], d["outcome"]) for d in h.decisions) == h.outcomes
    assert h.outcomes == {("cart", "quiet_hours_delayed"): 3, ("cart", "sent"): 1, ("cart", "suppressed_budget"): 2,
                          ("cart", "cancelled"): 1}
    [cancelled] = [d for d in h.decisions if d["outcome"] == "cancelled"]
    assert cancelled["customer_id"] == "c9" and cancelled["cause_event_id"] == "a9"
    assert cancelled["reason"] == "withdrawn" and cancelled["promotion_id"] is None
    sent = {d["promotion_id"] for d in h.decisions if d["outcome"] in ("sent", "holdout")}
    assert sent == {r["promotion_id"] for r in h.records}
    delayed = [d for d in h.decisions if d["outcome"] == "quiet_hours_delayed"]
    assert {d["reason"] for d in delayed} == {"quiet_hours"}
    assert delayed[0]["detail"] == "quiet hours: decided again at 2026-11-23T08:00:00.000Z"
    out = [o for o in h.outputs if o.topic == DECISIONS_TOPIC]
    assert all(o.key == o.value["customer_id"] for o in out)


def test_the_topic_is_configured_and_documented() -> None:
    assert "promotion_decisions" in OUTPUT_TOPIC_KEYS
    assert load_config(environ={}).kafka.topics["promotion_decisions"] == "promotion-decisions"
    promotions_md = (DOCS / "promotions.md").read_text()
    for field in DECISION_FIELDS:
        assert f"`{field}`" in promotions_md, field
    for code in (*SUPPRESSION_REASONS, *OUTCOMES):
        assert f"`{code}`" in promotions_md, code
    assert "`promotion-decisions`" in (DOCS / "contract.md").read_text()


# -- the flow's own stages (LocalFlow): 1, 4 and 8 shards ---------------------------------------

TIGHT = {"CHANNELFLOW_PROMOTIONS__RULES__CART_REMINDER__DAILY_BUDGET": "1",
         "CHANNELFLOW_PROMOTIONS__RULES__BROWSE_NUDGE__DAILY_BUDGET": "2",
         "CHANNELFLOW_PROMOTIONS__RULES__BIRTHDAY__DAILY_BUDGET": "1",
         "CHANNELFLOW_PROMOTIONS__RULES__BACK_IN_STOCK__WAITLIST_SIZE": "2"}


def _run(config: Config, shards: int, log: list[dict[str, Any]], end: int) -> dict[str, list[dict[str, Any]]]:
    config = replace(config, flow=replace(config.flow, shards=shards))
    flow = run_local(domain_specs(config, load_promotions(environ=TIGHT)), shards, log, end)
    [gate] = flow.domains(PROMOTION_GATE)
    assert isinstance(gate, PromotionGate)
    return {topic: records_of(flow, topic) for topic in ("promotions", DECISIONS_TOPIC)}


def test_the_flows_stages_decide_the_same_on_1_4_and_8_shards_with_tight_budgets() -> None:
    config = load_config(environ={})
    log = list(simulate(SimulationSettings(seed=7, customers=300, days=8, anomalies=False)))
    end = log[-1]["ts"] + 2 * HOUR
    runs = {shards: _run(config, shards, log, end) for shards in (1, 4, 8)}
    assert runs[1] == runs[4] == runs[8]
    decisions = runs[1][DECISIONS_TOPIC]
    budgets = {"cart_reminder": 1, "browse_nudge": 2, "birthday": 1}
    per_day = Counter((r["rule"], r["ts"][:10]) for r in runs[1]["promotions"])
    assert per_day and all(n <= budgets.get(rule_name, n) for (rule_name, _), n in per_day.items())
    assert any(n == budgets.get(rule_name) for (rule_name, _), n in per_day.items())  # some budget was reached
    assert any(d["reason"] == "budget" for d in decisions)
    assert json.loads(json.dumps(decisions)) == decisions  # plain JSON


def test_the_docs_give_the_holdout_formula_and_the_device_cart_timing() -> None:
    text = (DOCS / "promotions.md").read_text()
    assert re.search(r"digest_size=8", text) and 'person=b"cf-holdout"' in text
    # The worked example is the code's own.
    digest = hashlib.blake2b(b"channelflow-2026\x1fC1", digest_size=8, person=b"cf-holdout").digest()
    number = int.from_bytes(digest, "big")
    assert f"digest `{digest.hex()}`, integer\n{number}, remainder {number % 10_000}" in text
    assert in_holdout("C1", Holdout(34.6, "channelflow-2026")) and not in_holdout("C1", Holdout(34.59, "channelflow-2026"))
    assert "## Device carts after login" in text and "**`L + delay`**" in text


def test_a_device_cart_is_reminded_the_delay_after_the_login_not_after_the_add() -> None:
    config = load_config(environ={})
    rules = load_promotions(environ={})
    [cart_rule] = rules.enabled("cart_abandoned")
    delay = cart_rule.params.delay_ms  # type: ignore[union-attr]
    start = NOON - 2 * HOUR  # 10:00 London: no quiet hours at either time
    login_at = start + 3 * HOUR
    consent = crm("consent_changed", start - DAY, "C1", marketing=True, channels=["email", "push", "sms"])
    added = click("add_to_cart", start, "dev1", None, sku="MUG", qty=1, price=9.5)
    login = click("login", login_at, "dev1", "C1")
    flow = run_local(domain_specs(config, rules), config.flow.shards,
                     [_body(e) for e in (consent, added, login)], login_at + delay + HOUR)
    [record] = [r for r in records_of(flow, "promotions") if r["rule"] == cart_rule.name]
    assert record["cause_event_id"] == login.event_id
    assert record["created_at"] == iso_ms(login_at + delay) == record["ts"]
    assert record["offer"]["skus"] == ["MUG"]
    # Without the login the device's cart reaches no one.
    alone = run_local(domain_specs(config, rules), config.flow.shards, [_body(consent), _body(added)],
                      login_at + delay + HOUR)
    assert records_of(alone, "promotions") == [] and records_of(alone, DECISIONS_TOPIC) == []


def _body(event: Any) -> dict[str, Any]:
    return {"event_id": event.event_id, "type": event.type, "ts": event.ts, **event.body}
