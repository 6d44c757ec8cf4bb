"""The registry of promotion triggers: one module per trigger, each exporting ``TRIGGER``.

A trigger module holds its parameters dataclass and a :class:`~.base.Trigger`
(its rule keys and hooks); adding a trigger is a module here plus its line in
:data:`REGISTRY`, and its rule section in ``config/promotions.toml``. The rules
parser (``operators.promotions.rules``) and the domain (``operators.promotions.domain``)
take the triggers from :data:`REGISTRY`, in its order.

>>> list(REGISTRY)[:3]
['cart_abandoned', 'browse_abandoned', 'churn_risk']
>>> list(REGISTRY["browse_abandoned"].keys), REGISTRY["browse_abandoned"].params.__name__
(['views', 'window', 'delay'], 'BrowseAbandoned')
>>> timer_owner("r:cart:c1") is None  # a rule timer is the domain's; no bundled trigger has timers of its own
True
"""

from __future__ import annotations

from collections.abc import Mapping

from operators.promotions.triggers import (
    back_in_stock,
    birthday,
    browse_abandoned,
    cart_abandoned,
    churn_risk,
    first_purchase_followup,
    low_stock_urgency,
    tier_upgrade,
)
from operators.promotions.triggers.base import Trigger

__all__ = ["MODULES", "REGISTRY", "Trigger", "timer_owner"]

#: The trigger modules, in the order triggers are listed (rules-file messages, docs) and run.
MODULES = (
    cart_abandoned,
    browse_abandoned,
    churn_risk,
    first_purchase_followup,
    tier_upgrade,
    back_in_stock,
    low_stock_urgency,
    birthday,
)

#: Trigger name (``trigger = "..."`` in the rules file) -> trigger.
REGISTRY: Mapping[str, Trigger] = {module.TRIGGER.name: module.TRIGGER for module in MODULES}
_TIMER_OWNERS = {trigger.timer_prefix: trigger for trigger in REGISTRY.values() if trigger.timer_prefix}
if len(REGISTRY) != len(MODULES) or len(_TIMER_OWNERS) != sum(1 for t in REGISTRY.values() if t.timer_prefix):
    raise RuntimeError("two promotion triggers share a name or a timer prefix")


def timer_owner(key: str) -> Trigger | None:
    """The trigger whose own timer ``key`` is (None: not a trigger's own timer)."""
    for prefix, trigger in _TIMER_OWNERS.items():
        if key.startswith(prefix):
            return trigger
    return None
