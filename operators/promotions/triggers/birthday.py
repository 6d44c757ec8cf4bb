"""``birthday``: the customer's birthday.

Fires on the customer's birthday (profile ``birthday``, ``YYYY-MM-DD`` or
with any year) at local time ``send_at`` in their time zone (the policy's
``default_timezone`` without one), every year; 29 February is the 28th in
other years. A change of birthday or time zone moves it.

>>> from operators.promotions.examples import example_shard, customer, activity, fire
>>> shard = example_shard({"birthday": {"trigger": "birthday", "send_at": "10:00"}})
>>> born = customer("c1", birthday="1990-01-02", timezone="Europe/Paris")
>>> shard.on_event(activity(born, "e1", "product_view", 0, sku="MUG"))
[]
>>> fire(shard, 86_400_000 + 9 * 3_600_000 + 1)  # 1970-01-02T10:00 in Paris is 09:00Z
[('birthday', 'c1', 'birthday')]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time
from types import MappingProxyType

from operators.promotions.inputs import CustomerFacts
from operators.promotions.policy import customer_zone, local_datetime, local_epoch_ms
from operators.promotions.rules import Rule
from operators.promotions.state import Armed, Customer
from operators.promotions.triggers.base import ActivityChange, Context, Trigger
from operators.settings import parse_local_time

__all__ = ["TRIGGER", "Birthday", "next_birthday"]


@dataclass(frozen=True, slots=True)
class Birthday:
    """On the customer's birthday at local time ``send_at``."""

    send_at: time


def next_birthday(after: int, birthday: str | None, send_at: time, facts: CustomerFacts,
                  default_zone: str) -> int | None:
    """The first local ``send_at`` on the customer's birthday strictly after ``after`` (None: no birthday)."""
    try:
        _, month, day = (int(part) for part in (birthday or "").split("-"))
        date(2000, month, day)  # a leap year: 29 February is a birthday
    except ValueError:
        return None
    zone = customer_zone(facts, default_zone)
    year = local_datetime(after, zone).year
    for candidate_year in (year, year + 1):
        try:
            on = date(candidate_year, month, day)
        except ValueError:  # 29 February in a common year
            on = date(candidate_year, 2, 28)
        moment = local_epoch_ms(on, send_at, zone)
        if moment > after:
            return moment
    return None


def _next(ctx: Context, rule: Rule, facts: CustomerFacts, after: int) -> int | None:
    assert isinstance(rule.params, Birthday)
    return next_birthday(after, facts.birthday, rule.params.send_at, facts,
                         ctx.settings.policy.quiet_hours.default_timezone)


class BirthdayTrigger(Trigger):
    name = "birthday"
    params = Birthday
    keys = MappingProxyType({"send_at": parse_local_time})

    def on_activity(self, ctx: Context, rules: tuple[Rule, ...], change: ActivityChange) -> None:
        previous, facts = change.previous, change.item.facts
        if previous is not None and (previous.birthday, previous.timezone) == (facts.birthday, facts.timezone):
            return
        cust, now = change.cust, change.item.ts
        for rule in rules:
            moment = _next(ctx, rule, cust.facts, now)
            if moment is None:
                ctx.disarm(cust, rule.name, count=False)
            else:
                ctx.arm(cust, rule, moment, Armed(rule.name, cust.facts.customer_key, change.item.cause_event_id,
                                                  (), "birthday"))

    def on_fire(self, ctx: Context, rule: Rule, cust: Customer, armed: Armed, now: int) -> Armed | None:
        next_year = _next(ctx, rule, cust.facts, now)
        if next_year is not None:
            ctx.arm(cust, rule, next_year, armed)
        return armed


TRIGGER = BirthdayTrigger()
