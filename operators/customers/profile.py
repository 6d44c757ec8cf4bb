"""A customer's profile: the small CDP record folded from their events.

One :class:`CustomerProfile` per customer key (an account, an unlinked
loyalty card or an anonymous device). It keeps only bounded state: counters,
sums, the cart, and short recent-history lists, so its size does not grow with
a customer's event count. Money is in integer milli-units.

>>> from operators.contract.events import Event
>>> profile = CustomerProfile()
>>> click = {"channel": "web", "session_id": "s1", "anonymous_id": "a1"}
>>> profile.apply(Event("e1", "add_to_cart", "clickstream", 1_000, {**click, "sku": "K1", "qty": 2, "price": 9.5}))
>>> profile.cart, profile.cart_value_millis
({'K1': (2, 9500)}, 19000)
>>> order = {**click, "order_id": "o1", "lines": [], "total": 19.0, "fulfillment": {"method": "ship"}}
>>> profile.apply(Event("e2", "order_placed", "clickstream", 2_000, order))
>>> profile.cart, profile.orders, profile.lifetime_value_millis, profile.sessions
({}, 1, 19000, 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from operators.contract.events import Event
from operators.contract.kpis import kpi_of
from operators.contract.money import to_millis
from operators.state.pickling import pickled_as_call
from operators.time.units import DAY_MS

#: Purchase and session times kept per customer for the recent-activity features.
RECENT_TIMES = 32
#: Distinct SKUs a cart holds: an add of another SKU to a full cart is not kept. Every event of a
#: customer copies their cart into the facts it publishes, so an unbounded cart would make a
#: customer's events cost more and more.
MAX_CART_LINES = 1_000


@pickled_as_call
@dataclass(slots=True)
class CustomerProfile:
    """Everything channelflow knows of one customer; see ``docs/customers.md``."""

    first_seen: int | None = None
    last_seen: int | None = None
    last_event_id: str | None = None
    sessions: int = 0
    last_session: str | None = None
    session_times: list[int] = field(default_factory=list)
    views: list[tuple[int, str]] = field(default_factory=list)  # (ts, sku), oldest first
    cart: dict[str, tuple[int, int]] = field(default_factory=dict)  # sku -> (qty, unit price millis)
    orders_by_channel: dict[str, int] = field(default_factory=dict)  # web, app, store
    revenue_by_channel: dict[str, int] = field(default_factory=dict)
    refunds_millis: int = 0
    purchase_lines: int = 0  # line items over every purchase (basket breadth)
    purchase_times: list[int] = field(default_factory=list)  # the latest RECENT_TIMES, oldest first
    first_purchase: int | None = None
    last_purchase: int | None = None
    store_visits: dict[str, int] = field(default_factory=dict)
    marketing_consent: bool | None = None
    consent_channels: tuple[str, ...] = ()
    timezone: str | None = None
    birthday: str | None = None
    home_store_id: str | None = None

    # -- reading ---------------------------------------------------------------

    @property
    def orders(self) -> int:
        return sum(self.orders_by_channel.values())

    @property
    def revenue_millis(self) -> int:
        return sum(self.revenue_by_channel.values())

    @property
    def lifetime_value_millis(self) -> int:
        """Net spend: revenue over every channel minus refunds."""
        return self.revenue_millis - self.refunds_millis

    @property
    def cart_value_millis(self) -> int:
        return sum(qty * price for qty, price in self.cart.values())

    @property
    def home_store(self) -> str | None:
        """The stated home store, else the store visited most (ties: the lowest id)."""
        if self.home_store_id is not None:
            return self.home_store_id
        if not self.store_visits:
            return None
        return min(self.store_visits, key=lambda store: (-self.store_visits[store], store))

    def tier(self, tiers: tuple[tuple[str, int], ...]) -> str:
        """The highest tier whose lifetime-value threshold is reached (``tiers`` ascending)."""
        value = self.lifetime_value_millis
        reached = tiers[0][0]
        for name, threshold in tiers:
            if value >= threshold:
                reached = name
        return reached

    # -- folding events --------------------------------------------------------

    def apply(self, event: Event, recent_views: int = 20) -> None:
        """Fold one event of this customer into the profile."""
        ts, body, kind = event.ts, event.body, event.type
        self.first_seen = ts if self.first_seen is None else min(self.first_seen, ts)
        if self.last_seen is None or ts >= self.last_seen:
            self.last_seen, self.last_event_id = ts, event.event_id
        if event.topic == "clickstream":
            self._session(body["session_id"], ts)
        if kind == "product_view":
            self.views.append((ts, body["sku"]))
            del self.views[:-recent_views]
        elif kind == "add_to_cart":
            line = self.cart.get(body["sku"])
            if line is not None or len(self.cart) < MAX_CART_LINES:
                self.cart[body["sku"]] = ((line[0] if line else 0) + body["qty"], to_millis(body["price"]))
        elif kind == "remove_from_cart":
            qty, price = self.cart.get(body["sku"], (0, 0))
            if qty - body["qty"] > 0:
                self.cart[body["sku"]] = (qty - body["qty"], price)
            else:
                self.cart.pop(body["sku"], None)
        elif kind in ("order_placed", "sale", "return"):
            self._money(event)
        elif kind == "consent_changed":
            self.marketing_consent = body["marketing"]
            self.consent_channels = tuple(body.get("channels") or ())
        elif kind == "profile_updated":
            self.birthday = body.get("birthday", self.birthday)
            self.timezone = body.get("timezone", self.timezone)
            self.home_store_id = body.get("home_store_id", self.home_store_id)

    def _session(self, session_id: str, ts: int) -> None:
        if session_id != self.last_session:
            self.last_session = session_id
            self.sessions += 1
            _keep_recent(self.session_times, ts)

    def _money(self, event: Event) -> None:
        kpi = kpi_of(event)
        assert kpi is not None
        if kpi.kind == "return":
            self.refunds_millis += kpi.amount_millis
            return
        self.orders_by_channel[kpi.channel] = self.orders_by_channel.get(kpi.channel, 0) + 1
        self.revenue_by_channel[kpi.channel] = self.revenue_by_channel.get(kpi.channel, 0) + kpi.amount_millis
        if kpi.channel == "store":
            self.store_visits[kpi.store] = self.store_visits.get(kpi.store, 0) + 1
        else:
            self.cart.clear()  # an online order checks the cart out
        self.purchase_lines += len(event.body["lines"])
        _keep_recent(self.purchase_times, event.ts)
        self.first_purchase = event.ts if self.first_purchase is None else min(self.first_purchase, event.ts)
        self.last_purchase = event.ts if self.last_purchase is None else max(self.last_purchase, event.ts)

    # -- merging identities ----------------------------------------------------

    def absorb(self, alias: CustomerProfile, recent_views: int = 20) -> None:
        """Merge an alias's profile (a device's or a loyalty card's) into this one.

        Counts and sums add up; histories interleave by time; the cart is the
        union (for a SKU in both, the larger quantity: the same cart seen twice
        must not double); this profile's own consent and details win over the
        alias's.
        """
        self.first_seen = _min(self.first_seen, alias.first_seen)
        if alias.last_seen is not None and (self.last_seen is None or alias.last_seen > self.last_seen):
            self.last_seen, self.last_event_id = alias.last_seen, alias.last_event_id
        self.sessions += alias.sessions
        self.session_times = sorted(self.session_times + alias.session_times)[-RECENT_TIMES:]
        self.views = sorted(self.views + alias.views)[-recent_views:]
        for sku, (qty, price) in alias.cart.items():
            own = self.cart.get(sku)
            if own is None and len(self.cart) >= MAX_CART_LINES:
                continue
            if own is None or qty > own[0]:
                self.cart[sku] = (qty, price)
        for channel, count in alias.orders_by_channel.items():
            self.orders_by_channel[channel] = self.orders_by_channel.get(channel, 0) + count
        for channel, amount in alias.revenue_by_channel.items():
            self.revenue_by_channel[channel] = self.revenue_by_channel.get(channel, 0) + amount
        for store, visits in alias.store_visits.items():
            self.store_visits[store] = self.store_visits.get(store, 0) + visits
        self.refunds_millis += alias.refunds_millis
        self.purchase_lines += alias.purchase_lines
        self.purchase_times = sorted(self.purchase_times + alias.purchase_times)[-RECENT_TIMES:]
        self.first_purchase = _min(self.first_purchase, alias.first_purchase)
        self.last_purchase = _max(self.last_purchase, alias.last_purchase)
        if self.marketing_consent is None:
            self.marketing_consent, self.consent_channels = alias.marketing_consent, alias.consent_channels
        self.timezone = self.timezone or alias.timezone
        self.birthday = self.birthday or alias.birthday
        self.home_store_id = self.home_store_id or alias.home_store_id

    def summary(self, now: int, tiers: tuple[tuple[str, int], ...]) -> dict[str, Any]:
        """The profile as a JSON-ready dict (for inspection and docs)."""
        return {
            "sessions": self.sessions,
            "recent_views": [sku for _, sku in self.views],
            "cart": {sku: {"qty": q, "unit_price_millis": p} for sku, (q, p) in self.cart.items()},
            "cart_value_millis": self.cart_value_millis,
            "orders_by_channel": dict(self.orders_by_channel),
            "revenue_by_channel_millis": dict(self.revenue_by_channel),
            "first_purchase": self.first_purchase,
            "last_purchase": self.last_purchase,
            "recency_days": None if self.last_purchase is None else (now - self.last_purchase) / DAY_MS,
            "frequency": self.orders,
            "lifetime_value_millis": self.lifetime_value_millis,
            "tier": self.tier(tiers),
            "marketing_consent": self.marketing_consent,
            "consent_channels": list(self.consent_channels),
            "timezone": self.timezone,
            "birthday": self.birthday,
            "home_store": self.home_store,
        }


def _keep_recent(times: list[int], ts: int) -> None:
    times.append(ts)
    if len(times) > 1 and times[-2] > ts:
        times.sort()  # a late event
    del times[:-RECENT_TIMES]


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)
