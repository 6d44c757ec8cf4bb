"""Delivery policy: which of the promotions that fired for a customer at one moment goes out, and when.

:meth:`DeliveryPolicy.decide` takes every candidate of one customer at one
event time and returns one decision: each candidate either loses with a
reason code (:data:`SUPPRESSION_REASONS`), or is the single winner, which is
either delayed to the end of the customer's quiet hours or recorded (sent,
or holdout). The checks, in order, per candidate: rule disabled, expired,
channel unreachable, consent, re-eligibility, daily budget, frequency caps;
then one winner by priority; then quiet hours; then the holdout draw.

Holdout promotions go through exactly the same checks and count against
caps, re-eligibility and budgets as if sent: the control group is then drawn
from the very population that is treated, so their conversion rates compare.

>>> from operators.promotions.examples import example_settings
>>> from operators.promotions.inputs import CustomerFacts
>>> policy = DeliveryPolicy(example_settings({
...     "cart_reminder": {"trigger": "cart_abandoned", "delay": "1h", "priority": 20},
...     "birthday": {"trigger": "birthday", "send_at": "10:00", "priority": 5}}))
>>> facts = CustomerFacts("c1", True, marketing_consent=True, timezone="Europe/London")
>>> noon = 1_795_348_800_000  # 2026-11-22T12:00Z
>>> cart = Candidate.create("cart_reminder", "c1", "e1", noon, ("MUG",), "left in cart")
>>> bday = Candidate.create("birthday", "c1", "e2", noon, (), "birthday")
>>> decision = policy.decide(noon, facts, ContactHistory(), [cart, bday])
>>> decision.winner.rule, [(c.rule, reason) for c, reason in decision.suppressed]
('birthday', [('cart_reminder', 'outranked')])
>>> decision.delay_until is None  # noon in London: not quiet hours
True
"""

from __future__ import annotations

import hashlib
from base64 import b32encode
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from operators.promotions.inputs import CustomerFacts
from operators.promotions.rules import Cap, Holdout, PromotionSettings, QuietHours, Rule
from operators.state.pickling import pickled_as_call
from operators.time.units import DAY_MS

__all__ = [
    "DAY_MS",
    "DELAYED",
    "SUPPRESSION_REASONS",
    "Candidate",
    "ContactHistory",
    "DailyBudget",
    "Decision",
    "DeliveryPolicy",
    "consent_allows",
    "coupon_code",
    "customer_zone",
    "in_holdout",
    "local_datetime",
    "local_epoch_ms",
    "promotion_id",
    "quiet_release",
    "reachable",
    "utc_day",
]

#: Why a candidate was not recorded; the wiring counts ``suppressed_<reason>`` by rule.
SUPPRESSION_REASONS = (
    "disabled",  # its rule is no longer enabled (or no longer configured)
    "expired",  # its offer expired while it waited for quiet hours to end
    "no_channel",  # email/push/sms to a loyalty-card-only customer (no account to reach)
    "consent",  # opted out, not consented to this channel, or unknown under unknown_consent = "deny"
    "reeligibility",  # this rule reached this customer less than `reeligibility` ago
    "budget",  # the rule's daily budget is spent (exact over all shards: the gate decides)
    "cap",  # a frequency cap of the channel would be exceeded
    "outranked",  # another candidate of the customer at the same moment won on priority
    "erased",  # the customer was erased while it was pending
)
#: The outcome of a winner held back by quiet hours (not final: it is decided again at release).
DELAYED = "quiet_hours_delayed"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def promotion_id(rule: str, customer_key: str, cause_event_id: str, created_at: int) -> str:
    """Deterministic id of one trigger instance: the same log gives the same ids.

    >>> promotion_id("cart_reminder", "c1", "e1", 0) == promotion_id("cart_reminder", "c1", "e1", 0)
    True
    >>> len(promotion_id("cart_reminder", "c1", "e1", 0))
    32
    """
    text = "\x1f".join((rule, customer_key, cause_event_id, str(created_at)))
    return hashlib.blake2b(text.encode(), digest_size=16, person=b"cf-promotion").hexdigest()


def coupon_code(promotion_id: str) -> str:
    """The coupon code of a promotion, derived from its id: ``CF-`` and 12 base32 characters.

    >>> coupon_code("0" * 32) == coupon_code("0" * 32), len(coupon_code("0" * 32))
    (True, 15)
    """
    digest = hashlib.blake2b(promotion_id.encode(), digest_size=10, person=b"cf-coupon").digest()
    return "CF-" + b32encode(digest).decode("ascii")[:12]


def in_holdout(customer_key: str, holdout: Holdout) -> bool:
    """True if the customer is in the control group: the same answer for every rule and run.

    >>> from operators.promotions.rules import Holdout
    >>> in_holdout("c1", Holdout(0, "s")), in_holdout("c1", Holdout(100, "s"))
    (False, True)
    """
    digest = hashlib.blake2b(f"{holdout.salt}\x1f{customer_key}".encode(), digest_size=8,
                             person=b"cf-holdout").digest()
    return int.from_bytes(digest, "big") % 10_000 < round(holdout.percent * 100)


def reachable(facts: CustomerFacts, channel: str) -> bool:
    """Email, push and SMS need an account; the till reaches loyalty-card customers too."""
    return channel == "till" or facts.is_account


def consent_allows(facts: CustomerFacts, channel: str, unknown_consent: bool) -> bool:
    """Marketing consent for ``channel``: an opt-out wins; unknown takes the configured default.

    ``consent_channels`` restricts email, push and SMS (empty: all of them);
    the till needs marketing consent only.

    >>> consent_allows(CustomerFacts("c1", True, None), "email", unknown_consent=True)
    True
    >>> consent_allows(CustomerFacts("c1", True, True, ("push",)), "email", unknown_consent=True)
    False
    """
    consent = unknown_consent if facts.marketing_consent is None else facts.marketing_consent
    if not consent:
        return False
    return channel == "till" or not facts.consent_channels or channel in facts.consent_channels


def utc_day(ts: int) -> int:
    """The budget day of an event time: days since 1970-01-01, UTC."""
    return ts // DAY_MS


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_datetime(ts: int, zone: ZoneInfo) -> datetime:
    """Local wall-clock time of an event time, as a naive datetime (exact to the millisecond)."""
    return (_EPOCH + timedelta(milliseconds=ts)).astimezone(zone).replace(tzinfo=None)


def _epoch_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def local_epoch_ms(day: date, at: time, zone: ZoneInfo) -> int:
    """The first instant at which the local clock in ``zone`` reads ``day`` ``at`` or later.

    An ambiguous time (clocks going back) is its first occurrence; a time that
    does not exist (clocks going forward) is the moment of the change.

    >>> ny = ZoneInfo("America/New_York")  # 2026-03-08 02:00 EST -> 03:00 EDT
    >>> from operators.contract.dead_letter import iso_ms
    >>> iso_ms(local_epoch_ms(date(2026, 3, 8), time(2, 30), ny))
    '2026-03-08T07:00:00.000Z'
    """
    wall = datetime.combine(day, at)
    later = _epoch_ms(wall.replace(tzinfo=zone, fold=0))
    if local_datetime(later, zone) == wall:
        return later
    # In a gap fold=0 maps with the offset before the change (later UTC) and fold=1 with the
    # one after (earlier UTC); the change itself lies between them.
    low, high = _epoch_ms(wall.replace(tzinfo=zone, fold=1)), later
    while low < high:
        middle = (low + high) // 2
        if local_datetime(middle, zone) >= wall:
            high = middle
        else:
            low = middle + 1
    return low


def customer_zone(facts: CustomerFacts, default: str) -> ZoneInfo:
    """The customer's time zone, else ``default``."""
    if facts.timezone:
        try:
            return _zone(facts.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return _zone(default)


def quiet_release(ts: int, facts: CustomerFacts, quiet: QuietHours) -> int | None:
    """When a promotion at ``ts`` may go out: None if now, else the end of the quiet hours.

    Local time is the customer's time zone (else the default); a window with
    ``end`` before ``start`` wraps midnight; ``start == end`` is no quiet hours.

    >>> from operators.contract.dead_letter import iso_ms
    >>> from operators.promotions.rules import QuietHours
    >>> quiet = QuietHours(time(21), time(8), "Europe/London", ("email",))
    >>> facts = CustomerFacts("c1", True, timezone="Europe/Paris")
    >>> iso_ms(quiet_release(1_795_381_200_000, facts, quiet))  # 2026-11-22T21:00Z = 22:00 in Paris
    '2026-11-23T07:00:00.000Z'
    >>> quiet_release(1_795_348_800_000, facts, quiet) is None  # noon
    True
    """
    if quiet.start == quiet.end:
        return None
    zone = customer_zone(facts, quiet.default_timezone)
    local = local_datetime(ts, zone)
    now = local.time()
    if quiet.start < quiet.end:
        if not quiet.start <= now < quiet.end:
            return None
        release_day = local.date()
    else:
        if quiet.end <= now < quiet.start:
            return None
        release_day = local.date() if now < quiet.end else local.date() + timedelta(days=1)
    return max(ts, local_epoch_ms(release_day, quiet.end, zone))


@pickled_as_call
@dataclass(slots=True)
class ContactHistory:
    """What reached one customer: record times per channel (caps) and per rule (re-eligibility).

    >>> from operators.promotions.rules import Cap
    >>> history = ContactHistory()
    >>> history.record("r1", "email", 0, keep_ms=100)
    >>> history.capped("email", 99, (Cap(1, 100),)), history.capped("email", 100, (Cap(1, 100),))
    (True, False)
    """

    sends: dict[str, list[int]] = field(default_factory=dict)
    last_by_rule: dict[str, int] = field(default_factory=dict)

    def capped(self, channel: str, now: int, caps: Iterable[Cap]) -> bool:
        """True if one more record at ``now`` would exceed a cap: windows are ``(now - window, now]``."""
        times = self.sends.get(channel, ())
        return any(sum(1 for t in times if t > now - cap.window_ms) >= cap.count for cap in caps)

    def eligible(self, rule: str, now: int, reeligibility_ms: int) -> bool:
        """True once ``reeligibility_ms`` has passed since this rule last reached the customer."""
        last = self.last_by_rule.get(rule)
        return last is None or now - last >= reeligibility_ms

    def record(self, rule: str, channel: str, now: int, keep_ms: int) -> None:
        """Count a record at ``now``; forget what is older than ``keep_ms`` (the longest window)."""
        times = self.sends.setdefault(channel, [])
        times.append(now)
        self.sends[channel] = [t for t in times if t > now - keep_ms]
        self.last_by_rule[rule] = now


class DailyBudget:
    """Records per rule and UTC day, against each rule's whole budget (one instance: the gate's).

    >>> budget = DailyBudget()
    >>> budget.spend("r1", 0); budget.available("r1", 1, 5), budget.available("r1", 1, DAY_MS)
    (False, True)
    """

    def __init__(self) -> None:
        self._used: dict[str, tuple[int, int]] = {}  # rule -> (utc day, records)

    def available(self, rule: str, budget: int | None, now: int) -> bool:
        if budget is None:
            return True
        day, used = self._used.get(rule, (utc_day(now), 0))
        if day != utc_day(now):
            used = 0
        return used < budget

    def spend(self, rule: str, now: int) -> None:
        day, used = self._used.get(rule, (utc_day(now), 0))
        self._used[rule] = (utc_day(now), used + 1 if day == utc_day(now) else 1)


@pickled_as_call
@dataclass(frozen=True, slots=True)
class Candidate:
    """One trigger instance for one customer, waiting for a decision.

    ``created_at`` is the event time the trigger fired (the promotion's
    ``created_at``); ``skus`` the SKUs it is about; ``reason`` the text for humans.
    """

    promotion_id: str
    rule: str
    customer_key: str
    cause_event_id: str
    created_at: int
    skus: tuple[str, ...]
    reason: str

    @classmethod
    def create(cls, rule: str, customer_key: str, cause_event_id: str, created_at: int,
               skus: tuple[str, ...], reason: str) -> Candidate:
        pid = promotion_id(rule, customer_key, cause_event_id, created_at)
        return cls(pid, rule, customer_key, cause_event_id, created_at, skus, reason)


@dataclass(slots=True)
class Decision:
    """The outcome of one decision: losers with reasons, and at most one winner.

    A winner with ``delay_until`` waits for quiet hours to end; otherwise it
    is recorded now, delivered unless ``holdout``.
    """

    winner: Candidate | None = None
    delay_until: int | None = None
    holdout: bool = False
    suppressed: list[tuple[Candidate, str]] = field(default_factory=list)


class DeliveryPolicy:
    """The policy: the settings, and the daily budgets (its only state; one instance, the gate's)."""

    def __init__(self, settings: PromotionSettings) -> None:
        self.settings = settings
        self.budget = DailyBudget()

    @property
    def keep_ms(self) -> int:
        """How long a customer's contacts are remembered: the longest frequency-cap window."""
        caps = self.settings.policy.frequency_caps
        return max((cap.window_ms for channel in caps.values() for cap in channel), default=0)

    def reconfigure(self, fresh: DeliveryPolicy) -> None:
        """Take ``fresh``'s settings (today's rules file); the budgets spent today are kept."""
        self.settings = fresh.settings

    def decide(self, now: int, facts: CustomerFacts, history: ContactHistory,
               candidates: Iterable[Candidate]) -> Decision:
        """Decide among one customer's candidates at event time ``now`` (no state changes)."""
        decision = Decision()
        eligible: list[tuple[Rule, Candidate]] = []
        for candidate in candidates:
            rule = self.settings.rule(candidate.rule)
            reason = "disabled" if rule is None or not rule.enabled else self._check(rule, candidate, now, facts,
                                                                                      history)
            if reason is None:
                assert rule is not None
                eligible.append((rule, candidate))
            else:
                decision.suppressed.append((candidate, reason))
        if not eligible:
            return decision
        # Lower priority wins; ties: rule name, then the most recent trigger, then the id.
        eligible.sort(key=lambda rc: (rc[0].priority, rc[0].name, -rc[1].created_at, rc[1].promotion_id))
        (rule, winner), *losers = eligible
        decision.suppressed.extend((candidate, "outranked") for _, candidate in losers)
        decision.winner = winner
        quiet = self.settings.policy.quiet_hours
        if rule.channel in quiet.channels:
            decision.delay_until = quiet_release(now, facts, quiet)
        if decision.delay_until is None:
            decision.holdout = in_holdout(winner.customer_key, self.settings.policy.holdout)
        return decision

    def commit(self, winner: Candidate, now: int, history: ContactHistory) -> None:
        """Count a recorded winner (sent or holdout) against caps, re-eligibility and budget."""
        rule = self.settings.rule(winner.rule)
        assert rule is not None
        history.record(rule.name, rule.channel, now, self.keep_ms)
        self.budget.spend(rule.name, now)

    def _check(self, rule: Rule, candidate: Candidate, now: int, facts: CustomerFacts,
               history: ContactHistory) -> str | None:
        if now >= candidate.created_at + rule.expiry_ms:
            return "expired"
        if not reachable(facts, rule.channel):
            return "no_channel"
        if not consent_allows(facts, rule.channel, self.settings.policy.unknown_consent):
            return "consent"
        if not history.eligible(rule.name, now, rule.reeligibility_ms):
            return "reeligibility"
        if not self.budget.available(rule.name, rule.daily_budget, now):
            return "budget"
        if history.capped(rule.channel, now, self.settings.policy.frequency_caps.get(rule.channel, ())):
            return "cap"
        return None
