"""The `customers` topic: sign-ups, consent, profile changes, loyalty links and erasure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from channelflow.simulator.population import Customer
from operators.time.units import DAY_MS, MINUTE_MS

if TYPE_CHECKING:
    from channelflow.simulator.world import World

ERASURE_RATE = 0.05
PRELINKED_SHARE = 0.5
MESSAGE_CHANNELS = (["email"], ["email", "push"], ["email", "push", "sms"], ["push"])


def _push(world: World, ts: int, kind: str, customer_id: str, **fields: Any) -> None:
    world.push(ts, {"event_id": world.event_id(), "type": kind, "ts": ts, "customer_id": customer_id, **fields})


def _consent(world: World, customer: Customer, ts: int) -> None:
    assert customer.customer_id is not None
    fields: dict[str, Any] = {"marketing": customer.marketing_consent}
    if customer.marketing_consent:
        fields["channels"] = world.rng.choice(MESSAGE_CHANNELS)
    _push(world, ts, "consent_changed", customer.customer_id, **fields)


def _profile(world: World, customer: Customer, ts: int) -> None:
    assert customer.customer_id is not None
    _push(
        world, ts, "profile_updated", customer.customer_id,
        birthday=customer.birthday, timezone=customer.timezone, home_store_id=customer.home_store.id,
    )  # fmt: skip


def sign_up(world: World, customer: Customer, ts: int, *, initial: bool) -> None:
    """An account's consent and profile; customers who predate the stream arrive as a CRM load."""
    if customer.customer_id is None:
        return
    _consent(world, customer, ts)
    _profile(world, customer, ts + 1)
    if initial and customer.loyalty_id and world.rng.random() < PRELINKED_SHARE:
        customer.link_scheduled = True
        _push(world, ts + 2, "identity_linked", customer.customer_id, loyalty_id=customer.loyalty_id)


def link_loyalty_later(world: World, customer: Customer, after_ms: int) -> None:
    """After a first till purchase, the shopper links the card to their account days later."""
    if customer.customer_id is None or customer.link_scheduled:
        return
    customer.link_scheduled = True
    ts = after_ms + world.rng.randrange(2 * DAY_MS, 30 * DAY_MS)
    if ts < customer.churn_ms:
        _push(world, ts, "identity_linked", customer.customer_id, loyalty_id=customer.loyalty_id)


def change_consent(world: World, customer: Customer, day_start: int) -> None:
    """An account holder opts in or out of marketing during the day."""
    ts = day_start + world.rng.randrange(DAY_MS)
    if customer.customer_id is not None and customer.joined_ms <= ts < customer.churn_ms:
        customer.marketing_consent = not customer.marketing_consent
        _consent(world, customer, ts)


def update_profile(world: World, customer: Customer, day_start: int) -> None:
    """An account holder changes their home store (and with it their time zone)."""
    ts = day_start + world.rng.randrange(DAY_MS)
    if customer.customer_id is not None and customer.joined_ms <= ts < customer.churn_ms:
        customer.home_store = world.rng.choice(world.stores)
        _profile(world, customer, ts)


def maybe_erase(world: World, customer: Customer) -> None:
    """Some account holders who left ask to be forgotten, within a month of leaving."""
    if customer.customer_id is None or world.rng.random() >= ERASURE_RATE:
        return
    ts = customer.churn_ms + world.rng.randrange(DAY_MS, 30 * DAY_MS)
    _push(world, ts, "erasure_requested", customer.customer_id)
    world.truth({"record": "erasure", "customer_key": customer.key, "customer_id": customer.customer_id, "at": ts})


def initial_load_time(world: World, start_ms: int) -> int:
    """When a pre-existing account's CRM record is loaded: in the first ten minutes."""
    return start_ms + world.rng.randrange(10 * MINUTE_MS)
