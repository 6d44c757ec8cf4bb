"""The promotion gate: every promotion decision, in one place and one order.

Daily budgets and back-in-stock waitlists are bounds over all customers, so
the customer-sharded promotions stage (``operators.promotions.domain``) does
not decide: it runs the triggers and sends the gate, on the
:data:`PROMOTION_CANDIDATES` stream, what the decisions need, as
:data:`GateInput` items:

- a :class:`~operators.promotions.policy.Candidate` (a trigger fired),
- the customer's :class:`CustomerFacts` in their policy view (:func:`policy_view`:
  account, consent, time zone), before the first message about them and
  whenever it changes,
- :class:`Purchased` (attribution, and leaving the waitlists of what was bought),
- :class:`WaitlistJoin` (asks for a waitlist place),
- :class:`Withdrawn` (a trigger withdrawn before it fired: ``cancelled``),
- :class:`Erasure`.

The gate also reads the stock levels (the restocks that release waitlists).
It is one ordered shard: it applies its inputs in ``(ts, order)`` order once
the watermark of every upstream shard has passed them, so budgets and
waitlists are exact per rule, and the records are the same, whatever the
number of customer shards, processes or batch sizes. It holds per customer
the contact history (caps, re-eligibility), the candidates of the moment,
quiet-hours delays and open promotions (:class:`~operators.promotions.state.Recipient`).

It writes the ``promotions`` records and one ``promotion_decisions`` record
per decision (:meth:`PromotionGate.decision_record`), and counts each
decision once (:class:`PromotionCounts`, the metrics).
"""

from __future__ import annotations

import pickle
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any

from operators.contract.dead_letter import iso_ms
from operators.promotions.attribution import ConversionCounts, OpenPromotion, Purchase, attribute
from operators.promotions.inputs import CustomerFacts, Erasure, StockLevel
from operators.promotions.policy import DELAYED, Candidate, DeliveryPolicy, coupon_code
from operators.promotions.rules import PromotionSettings
from operators.promotions.state import Pending, Recipient
from operators.promotions.triggers.back_in_stock import WAITLIST_TIMER, Waitlists
from operators.promotions.triggers.base import human_duration
from operators.state.pickling import pickled_as_call
from operators.state.tracked import MutableTrackedDict
from operators.time.shard import DomainShard
from operators.time.stream_items import Output, Signal
from operators.time.timers import Timer, TimerQueue

__all__ = [
    "DECISIONS_TOPIC",
    "DECISION_FIELDS",
    "OUTCOMES",
    "PROMOTION_CANDIDATES",
    "TOPIC",
    "GateInput",
    "PromotionCounts",
    "PromotionGate",
    "Purchased",
    "WaitlistJoin",
    "Withdrawn",
    "policy_view",
    "reason_of",
]

#: The stream from the customer shards to the gate.
PROMOTION_CANDIDATES = "promotion_candidates"
#: The logical output topics: promotions to deliver, and every decision with its reason.
TOPIC, DECISIONS_TOPIC = "promotions", "promotion_decisions"
#: Outcomes besides ``suppressed_<reason>``: ``cancelled`` (a cart, browse or follow-up trigger
#: withdrawn before it fired) and ``waitlist_full`` (a back-in-stock waitlist turned a customer away).
OUTCOMES = ("sent", "holdout", DELAYED, "cancelled", "waitlist_full")

# The gate's timer keys. "~" sorts after every other prefix, so a customer's decision at time T
# runs after every other timer at T, each of which may add a candidate to it.
QUIET, DECIDE = "q:", "~d:"
_OWN = (QUIET, DECIDE, WAITLIST_TIMER)
#: The fields of a ``promotion_decisions`` record, in the docs' order.
DECISION_FIELDS = ("customer_id", "rule", "trigger", "channel", "outcome", "reason", "promotion_id",
                   "cause_event_id", "created_at", "ts", "detail")


@pickled_as_call
@dataclass(frozen=True, slots=True)
class Purchased:
    """A purchase of a customer the gate knows: it may convert an open promotion and leave waitlists."""

    customer_key: str
    purchase: Purchase
    skus: tuple[str, ...]


@pickled_as_call
@dataclass(frozen=True, slots=True)
class WaitlistJoin:
    """The customer viewed or carted ``sku`` while it was out of stock: a place on the rule's waitlist."""

    rule: str
    customer_key: str
    sku: str
    cause_event_id: str


@pickled_as_call
@dataclass(frozen=True, slots=True)
class Withdrawn:
    """A rule's trigger for the customer was withdrawn before it fired (``cause_event_id``: what armed it)."""

    rule: str
    customer_key: str
    cause_event_id: str


GateInput = Candidate | CustomerFacts | Purchased | WaitlistJoin | Withdrawn | Erasure | StockLevel


#: The facts fields the delivery policy reads: what :func:`policy_view` keeps (the first five
#: fields of ``CustomerFacts``, in order).
POLICY_FIELDS = ("customer_key", "is_account", "marketing_consent", "consent_channels", "timezone")
_policy_fields = attrgetter(*POLICY_FIELDS)


def policy_view(facts: CustomerFacts) -> CustomerFacts:
    """The facts the delivery policy reads (account, consent, time zone); the rest left out.

    >>> policy_view(CustomerFacts("c1", True, True, orders=3, cart=(("MUG", 1, 9_500),)))
    CustomerFacts(customer_key='c1', is_account=True, marketing_consent=True, consent_channels=(), timezone=None, \
birthday=None, home_store=None, orders=0, lifetime_value_millis=0, last_order_ts=None, cart=())
    """
    return CustomerFacts(*_policy_fields(facts))


def same_policy_view(view: CustomerFacts, facts: CustomerFacts) -> bool:
    """Whether ``policy_view(facts) == view``, without building the view (it runs per activity):
    the fields :data:`POLICY_FIELDS` are equal.

    >>> facts = CustomerFacts("c1", True, True, orders=3)
    >>> same_policy_view(policy_view(facts), facts), same_policy_view(policy_view(facts), CustomerFacts("c1", True))
    (True, False)
    """
    return bool(_policy_fields(view) == _policy_fields(facts))


def reason_of(outcome: str) -> str | None:
    """The ``reason`` code of a decision record with ``outcome`` (None for ``sent`` and ``holdout``).

    >>> reason_of("suppressed_budget"), reason_of("quiet_hours_delayed"), reason_of("sent")
    ('budget', 'quiet_hours', None)
    """
    if outcome.startswith("suppressed_"):
        return outcome.removeprefix("suppressed_")
    return {DELAYED: "quiet_hours", "cancelled": "withdrawn", "waitlist_full": "waitlist_full"}.get(outcome)


@dataclass
class PromotionCounts:
    """What happened since the last :meth:`PromotionGate.drain`, for the metrics.

    ``outcomes`` by ``(rule, outcome)``: ``sent``, ``holdout``,
    ``suppressed_<reason>`` and the :data:`OUTCOMES`; each is one
    ``promotion_decisions`` record.
    """

    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    conversions: ConversionCounts = field(default_factory=ConversionCounts)


class PromotionGate:
    """The gate's domain (a ``Domain`` for a one-shard ``DomainShard``): decisions, budgets, waitlists.

    >>> from operators.promotions.examples import example_settings
    >>> from operators.time.stream_items import Progress
    >>> settings = example_settings({"cart": {"trigger": "cart_abandoned", "delay": "1h", "daily_budget": 1}})
    >>> gate = DomainShard(PromotionGate(settings), upstreams=1, ordered=True)
    >>> noon = 1_795_348_800_000  # 2026-11-22T12:00Z
    >>> for n, key in enumerate(("c1", "c2")):
    ...     facts = CustomerFacts(key, True, marketing_consent=True)
    ...     for m, body in enumerate((facts, Candidate.create("cart", key, f"e{n}", noon, ("MUG",), "left"))):
    ...         _ = gate.on_event(Signal(PROMOTION_CANDIDATES, key, noon, f"e{n}-{m}", body))
    >>> [(o.topic, o.key, o.value.get("outcome")) for o in gate.on_progress(Progress(0, noon + 1))]
    [('promotions', 'c1', None), ('promotion_decisions', 'c1', 'sent'), ('promotion_decisions', 'c2', 'suppressed_budget')]
    """

    def __init__(self, settings: PromotionSettings) -> None:
        self.settings = settings
        self.policy = DeliveryPolicy(settings)
        self._recipients: MutableTrackedDict[str, Recipient] = MutableTrackedDict()
        self._waitlists = Waitlists()
        self.counts = PromotionCounts()

    # -- queries

    @staticmethod
    def owns(timer_key: str) -> bool:
        """True for the gate's own timers (quiet hours, decisions, waitlist expiry)."""
        return timer_key.startswith(_OWN)

    def waitlist(self, rule: str, sku: str) -> list[str]:
        """Customers on a back-in-stock waitlist, first come first."""
        return list(self._waitlists.lists.get((rule, sku), {}))

    def drain(self) -> PromotionCounts:
        """The counts since the last drain (the wiring adds them to its Prometheus counters)."""
        counts, self.counts = self.counts, PromotionCounts()
        return counts

    def reconfigure(self, fresh: PromotionGate) -> tuple[str, ...]:
        """Restored from a snapshot: decide by today's rules file (``fresh``'s settings), keeping
        recipients, budgets spent and waitlists."""
        self.settings = fresh.settings
        self.policy.reconfigure(fresh.policy)
        return ()

    def state_size_bytes(self) -> int:
        """Bytes of the gate's pickled state (the state a restore rebuilds)."""
        return len(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))

    # -- Domain protocol

    def on_event(self, item: Signal, shard: DomainShard[Any]) -> list[Output]:
        """Apply one input (a :class:`Signal` carrying it); first fire every timer due before it."""
        body, ts = item.body, item.ts
        outputs: list[Output] = []
        for timer in shard.timers.pop_due(ts - 1):
            outputs.extend(self.on_timer(timer, shard))
        outputs.extend(self.apply(body, ts, shard.timers))
        return outputs

    def on_timer(self, timer: Timer[Any], shard: DomainShard[Any]) -> list[Output]:
        timers = shard.timers
        if timer.key.startswith(DECIDE):
            return self._decide(timer.payload, timer.deadline, timers)
        if timer.key.startswith(QUIET):
            self._release(timer.payload, timer.deadline, timers)
        elif timer.key.startswith(WAITLIST_TIMER):
            self._waitlists.on_timer(timer, self.settings, self._recipients, timers)
        return []

    def on_watermark(self, shard: DomainShard[Any]) -> list[Output]:
        """Nothing to do: every delay is a timer."""
        return []

    def apply(self, body: GateInput, now: int, timers: TimerQueue[Any]) -> list[Output]:
        """Apply one input at event time ``now`` (timers due before it have fired)."""
        if isinstance(body, Candidate):
            rec = self._recipients.get(body.customer_key)
            if rec is not None:  # the facts come before the first candidate
                self._propose(rec, body, now, timers)
            return []
        if isinstance(body, CustomerFacts):
            rec = self._recipients.get(body.customer_key)
            if rec is None:
                self._recipients[body.customer_key] = Recipient(body)
            else:
                rec.facts = body
            return []
        if isinstance(body, Purchased):
            self._on_purchase(body, now)
            return []
        if isinstance(body, WaitlistJoin):
            return self._on_join(body, now, timers)
        if isinstance(body, Withdrawn):
            return [self.decision_record(body.customer_key, body.rule, "cancelled", now,
                                         cause_event_id=body.cause_event_id,
                                         detail="the trigger was withdrawn before it fired")]
        if isinstance(body, Erasure):
            return self._on_erasure(body, timers)
        if isinstance(body, StockLevel):
            for candidate in self._waitlists.on_stock_level(body, self.settings, self._recipients, timers):
                self._propose(self._recipients[candidate.customer_key], candidate, now, timers)
            return []
        raise TypeError(f"not a promotion gate input: {type(body).__name__}")

    # -- inputs

    def _on_purchase(self, item: Purchased, now: int) -> None:
        rec = self._recipients.get(item.customer_key)
        if rec is None:
            return
        _close_expired(rec, now)
        found = attribute(rec.open, item.purchase)
        if found is not None:
            promo, via = found
            self.counts.conversions.add(promo, via, item.purchase.revenue_millis)
            rec.open.remove(promo)
        self._waitlists.leave(rec, item.customer_key, set(item.skus))

    def _on_join(self, item: WaitlistJoin, now: int, timers: TimerQueue[Any]) -> list[Output]:
        rule = self.settings.rule(item.rule)
        rec = self._recipients.get(item.customer_key)
        if rule is None or not rule.enabled or rec is None:
            return []
        if self._waitlists.join(rule, item.sku, item.customer_key, rec, now, timers):
            return []
        size = getattr(rule.params, "waitlist_size", 0)
        return [self.decision_record(item.customer_key, rule.name, "waitlist_full", now,
                                     cause_event_id=item.cause_event_id,
                                     detail=f"the waitlist of {item.sku} is full ({size} customers)")]

    def _on_erasure(self, item: Erasure, timers: TimerQueue[Any]) -> list[Output]:
        key = item.customer_key
        rec = self._recipients.pop(key, None)
        if rec is None:
            return []
        outputs = [self._candidate_record(candidate, "suppressed_erased", item.ts, "the customer was erased")
                   for candidate in (*rec.candidates, *(pending.candidate for pending in rec.pending))]
        timers.forget([QUIET + key, DECIDE + key])
        self._waitlists.leave(rec, key, {sku for _, sku in rec.waitlists})
        return outputs

    # -- candidates and decisions

    def _propose(self, rec: Recipient, candidate: Candidate, now: int, timers: TimerQueue[Any]) -> None:
        """Add a candidate to the customer's decision at ``now`` (made once time has moved past it)."""
        rec.candidates.append(candidate)
        timers.schedule(DECIDE + candidate.customer_key, now, candidate.customer_key)

    def _release(self, key: str, now: int, timers: TimerQueue[Any]) -> None:
        rec = self._recipients.get(key)
        if rec is None:
            return
        due = [pending for pending in rec.pending if pending.release <= now]
        rec.pending = [pending for pending in rec.pending if pending.release > now]
        for pending in due:
            self._propose(rec, pending.candidate, now, timers)
        if rec.pending:
            timers.schedule(QUIET + key, min(pending.release for pending in rec.pending), key)

    def _decide(self, key: str, now: int, timers: TimerQueue[Any]) -> list[Output]:
        rec = self._recipients.get(key)
        if rec is None or not rec.candidates:
            return []
        candidates, rec.candidates = rec.candidates, []
        decision = self.policy.decide(now, rec.facts, rec.history, candidates)
        winner = decision.winner
        outputs = [self._candidate_record(candidate, f"suppressed_{reason}", now,
                                          self._explain(reason, candidate, now, rec, winner))
                   for candidate, reason in decision.suppressed]
        if winner is None:
            return outputs
        rule = self.settings.rule(winner.rule)
        assert rule is not None
        expires_at = winner.created_at + rule.expiry_ms
        if decision.delay_until is not None:
            if decision.delay_until >= expires_at:
                outputs.append(self._candidate_record(
                    winner, "suppressed_expired", now,
                    f"quiet hours until {iso_ms(decision.delay_until)}; the offer expires at {iso_ms(expires_at)}"))
                return outputs
            outputs.append(self._candidate_record(winner, DELAYED, now,
                                                  f"quiet hours: decided again at {iso_ms(decision.delay_until)}"))
            rec.pending.append(Pending(winner, decision.delay_until))
            timers.schedule(QUIET + key, min(pending.release for pending in rec.pending), key)
            return outputs
        self.policy.commit(winner, now, rec.history)
        code = coupon_code(winner.promotion_id)
        _close_expired(rec, now)  # else a customer who never buys again keeps every promotion ever sent
        rec.open.append(OpenPromotion(winner.promotion_id, rule.name, code, decision.holdout, now,
                                      now + self.settings.policy.attribution_window_ms, expires_at))
        outputs.append(Output(TOPIC, key, {
            "promotion_id": winner.promotion_id,
            "customer_id": key,
            "rule": rule.name,
            "offer": rule.offer.record(winner.skus),
            "coupon_code": code,
            "channel": rule.channel,
            "reason": winner.reason,
            "created_at": iso_ms(winner.created_at),
            "expires_at": iso_ms(expires_at),
            "holdout": decision.holdout,
            "ts": iso_ms(now),
            "cause_event_id": winner.cause_event_id,
        }, now))
        outcome = "holdout" if decision.holdout else "sent"
        detail = f"{winner.reason} (control group: recorded, not delivered)" if decision.holdout else winner.reason
        outputs.append(self._candidate_record(winner, outcome, now, detail))
        return outputs

    # -- decision records

    def decision_record(self, key: str, rule_name: str, outcome: str, now: int, *, cause_event_id: str,
                        promotion_id: str | None = None, created_at: int | None = None,
                        detail: str = "") -> Output:
        """Count one decision and its ``promotion_decisions`` record (key: the customer)."""
        self.counts.outcomes[rule_name, outcome] += 1
        rule = self.settings.rule(rule_name)
        return Output(DECISIONS_TOPIC, key, {
            "customer_id": key,
            "rule": rule_name,
            "trigger": None if rule is None else rule.trigger,
            "channel": None if rule is None else rule.channel,
            "outcome": outcome,
            "reason": reason_of(outcome),
            "promotion_id": promotion_id,
            "cause_event_id": cause_event_id,
            "created_at": None if created_at is None else iso_ms(created_at),
            "ts": iso_ms(now),
            "detail": detail,
        }, now)

    def _candidate_record(self, candidate: Candidate, outcome: str, now: int, detail: str) -> Output:
        return self.decision_record(candidate.customer_key, candidate.rule, outcome, now,
                                    cause_event_id=candidate.cause_event_id, promotion_id=candidate.promotion_id,
                                    created_at=candidate.created_at, detail=detail)

    def _explain(self, reason: str, candidate: Candidate, now: int, rec: Recipient, winner: Candidate | None) -> str:
        """The ``detail`` of a suppression: the reason in words, with the numbers behind it."""
        rule = self.settings.rule(candidate.rule)
        if reason == "disabled" or rule is None:
            return "the rule is disabled or no longer in the rules file"
        channel = rule.channel
        if reason == "expired":
            return f"the offer expired at {iso_ms(candidate.created_at + rule.expiry_ms)}"
        if reason == "no_channel":
            return f"{channel} needs an account; the customer is known by a loyalty card only"
        if reason == "consent":
            facts = rec.facts
            if facts.marketing_consent is None:
                return "marketing consent unknown (policy.unknown_consent = \"deny\")"
            if not facts.marketing_consent:
                return "opted out of marketing"
            return f"no consent for {channel} (consents to {', '.join(facts.consent_channels)})"
        if reason == "reeligibility":
            last = rec.history.last_by_rule.get(rule.name, now)
            return (f"this rule reached the customer at {iso_ms(last)}; "
                    f"not again within {human_duration(rule.reeligibility_ms)}")
        if reason == "budget":
            day = datetime.fromtimestamp(now / 1000, timezone.utc).date().isoformat()
            return f"the daily budget of {rule.daily_budget} for {day} (UTC) is spent"
        if reason == "cap":
            times = rec.history.sends.get(channel, ())
            for cap in self.settings.policy.frequency_caps.get(channel, ()):
                if sum(1 for t in times if t > now - cap.window_ms) >= cap.count:
                    return f"{channel} frequency cap {cap.count} per {human_duration(cap.window_ms)} is full"
            return f"a {channel} frequency cap is full"
        if reason == "outranked" and winner is not None:
            return f"{winner.rule} went to the customer at the same moment (priority order)"
        return reason


def _close_expired(rec: Recipient, now: int) -> None:
    """Forget ``rec``'s promotions that nothing at or after ``now`` can convert any more."""
    rec.open = [promo for promo in rec.open if promo.closes_at >= now]
