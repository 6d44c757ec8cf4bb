"""The marketer's rules file (``config/promotions.toml``) parsed into :mod:`operators.promotions.rules` types.

:func:`promotions_from_mapping` validates a parsed rules document (the shell
reads the file and overlays its environment overrides
first); a bad key, type or value raises :class:`~operators.settings.ConfigError`
whose message starts with the dotted key. Each trigger's own keys and their
parsers come from its module (``operators.promotions.triggers``).
``docs/promotions.md`` documents every key.

>>> settings = promotions_from_mapping({
...     "policy": {"unknown_consent": "deny", "attribution_window": "3d",
...                "frequency_caps": {"email": [{"count": 1, "window": "16h"}], "push": [], "sms": [], "till": []},
...                "quiet_hours": {"start": "21:00", "end": "08:00", "default_timezone": "Europe/London",
...                                "channels": ["email", "push", "sms"]},
...                "holdout": {"percent": 10, "salt": "s1"}},
...     "rules": {"cart_reminder": {"trigger": "cart_abandoned", "enabled": True, "channel": "email",
...               "priority": 10, "reeligibility": "3d", "daily_budget": 1000, "expiry": "2d",
...               "offer": {"kind": "percent_off", "value": 10}, "delay": "1h"}}})
>>> rule = settings.rules[0]
>>> rule.name, rule.trigger, rule.params
('cart_reminder', 'cart_abandoned', CartAbandoned(delay_ms=3600000))
>>> settings.policy.frequency_caps["email"]
(Cap(count=1, window_ms=57600000),)
>>> promotions_from_mapping({"policy": {}, "rules": {}})
Traceback (most recent call last):
...
operators.settings.ConfigError: policy.unknown_consent: missing
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from operators.promotions.rules import (
    OFFER_KINDS,
    PROMOTION_CHANNELS,
    Cap,
    Holdout,
    Offer,
    PromotionPolicy,
    PromotionSettings,
    QuietHours,
    Rule,
)
from operators.promotions.triggers import REGISTRY
from operators.promotions.triggers.base import Parser
from operators.settings import (
    ConfigError,
    check_sections,
    fail,
    parse_duration,
    parse_int,
    parse_local_time,
    parse_money,
    parse_number,
    parse_one_of,
    parse_positive_duration,
    parse_str,
    parse_table,
    parse_timezone,
    take,
)

__all__ = ["TRIGGERS", "TriggerParams", "promotions_from_mapping"]

#: The trigger names, in the registry's order.
TRIGGERS = tuple(REGISTRY)
# Rule names go into timer keys and metric labels: keep them plain.
_RULE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")  # \Z: ``$`` matches before a final newline

#: The parameters of a rule: the params dataclass of any trigger of the registry (their union at
#: run time; a type checker cannot read the registry, so to it they are ``Any``, narrowed with ``isinstance``).
if TYPE_CHECKING:
    TriggerParams: TypeAlias = Any
else:
    TriggerParams = reduce(operator.or_, (trigger.params for trigger in REGISTRY.values()))


# -- parsing --------------------------------------------------------------------


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise fail(key, "true or false", value)
    return value


def _list_of(parse: Callable[[str, Any], Any]) -> Callable[[str, Any], tuple[Any, ...]]:
    def parse_list(key: str, value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise fail(key, "an array", value)
        items = tuple(parse(f"{key}[{i}]", item) for i, item in enumerate(value))
        for i, item in enumerate(items):
            if item in items[:i]:
                raise ConfigError(f"{key}[{i}]: {item!r} is listed twice")
        return items

    return parse_list


def _budget(key: str, value: Any) -> int | None:
    if value == "unlimited":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(key, "an integer >= 1 or 'unlimited'", value)
    return value


#: Trigger name -> (its rule keys with their parsers, its params dataclass), from the registry.
_TRIGGER_SPECS: dict[str, tuple[Mapping[str, Parser], Callable[..., TriggerParams]]] = {
    name: (trigger.keys, trigger.params) for name, trigger in REGISTRY.items()
}

_RULE_KEYS: dict[str, Callable[[str, Any], Any]] = {
    "trigger": parse_one_of(*TRIGGERS),
    "enabled": _bool,
    "channel": parse_one_of(*PROMOTION_CHANNELS),
    "priority": parse_int(0, 1_000_000),
    "reeligibility": parse_duration,
    "daily_budget": _budget,
    "expiry": parse_positive_duration,
    "offer": parse_table,
}


def _offer(key: str, raw: Any) -> Offer:
    table = dict(parse_table(key, raw))
    optional = {k: table.pop(k) for k in ("value", "skus") if k in table}
    kind = take(table, key, {"kind": parse_one_of(*OFFER_KINDS)})["kind"]
    value: int | float | None = None
    if kind == "percent_off":
        if "value" not in optional:
            raise ConfigError(f"{key}.value: missing (a percent_off offer needs a percentage)")
        value = parse_number(0.0, 100.0, exclusive_min=True)(f"{key}.value", optional["value"])
    elif kind == "amount_off":
        if "value" not in optional:
            raise ConfigError(f"{key}.value: missing (an amount_off offer needs an amount)")
        value = parse_money(f"{key}.value", optional["value"])
    elif "value" in optional:
        raise ConfigError(f"{key}.value: a {kind} offer takes no value")
    skus = _list_of(parse_str)(f"{key}.skus", optional.get("skus", []))
    return Offer(kind, value, skus)


def _rule(name: str, raw: Any) -> Rule:
    section = f"rules.{name}"
    if not _RULE_NAME.match(name):
        raise ConfigError(f"{section}: a rule name is a lower-case letter then letters, digits or '_' (at most 64)")
    table = parse_table(section, raw)
    if "trigger" not in table:
        raise ConfigError(f"{section}.trigger: missing")
    trigger = _RULE_KEYS["trigger"](f"{section}.trigger", table["trigger"])
    param_spec, params_type = _TRIGGER_SPECS[trigger]
    values = take(table, section, {**_RULE_KEYS, **param_spec})
    params = params_type(*(values[k] for k in param_spec))
    return Rule(
        name=name,
        trigger=trigger,
        enabled=values["enabled"],
        channel=values["channel"],
        priority=values["priority"],
        reeligibility_ms=values["reeligibility"],
        daily_budget=values["daily_budget"],
        expiry_ms=values["expiry"],
        offer=_offer(f"{section}.offer", values["offer"]),
        params=params,
    )


def _cap(key: str, raw: Any) -> Cap:
    values = take(parse_table(key, raw), key, {"count": parse_int(1, 1_000_000), "window": parse_positive_duration})
    return Cap(values["count"], values["window"])


def _caps(section: str, raw: Any) -> dict[str, tuple[Cap, ...]]:
    entries = take(parse_table(section, raw), section, dict.fromkeys(PROMOTION_CHANNELS, lambda key, v: v))
    caps: dict[str, tuple[Cap, ...]] = {}
    for channel, items in entries.items():
        key = f"{section}.{channel}"
        if not isinstance(items, list):
            raise fail(key, "an array of {count, window} tables", items)
        caps[channel] = tuple(_cap(f"{key}[{i}]", item) for i, item in enumerate(items))
    return caps


def _policy(raw: Any) -> PromotionPolicy:
    values = take(
        parse_table("policy", raw),
        "policy",
        {
            "unknown_consent": parse_one_of("allow", "deny"),
            "attribution_window": parse_positive_duration,
            "frequency_caps": _caps,
            "quiet_hours": parse_table,
            "holdout": parse_table,
        },
    )
    quiet = take(values["quiet_hours"], "policy.quiet_hours", {
        "start": parse_local_time,
        "end": parse_local_time,
        "default_timezone": parse_timezone,
        "channels": _list_of(parse_one_of(*PROMOTION_CHANNELS)),
    })
    holdout = take(values["holdout"], "policy.holdout", {"percent": parse_number(0.0, 100.0), "salt": parse_str})
    return PromotionPolicy(
        unknown_consent=values["unknown_consent"] == "allow",
        frequency_caps=values["frequency_caps"],
        quiet_hours=QuietHours(quiet["start"], quiet["end"], quiet["default_timezone"], quiet["channels"]),
        holdout=Holdout(float(holdout["percent"]), holdout["salt"]),
        attribution_window_ms=values["attribution_window"],
    )


def promotions_from_mapping(raw: Mapping[str, Any], source: Path | None = None) -> PromotionSettings:
    """Build and validate :class:`PromotionSettings` from a parsed rules document."""
    doc = dict(raw)
    sections = ("policy", "rules")
    check_sections(doc, sections)
    policy = _policy(doc["policy"])
    rules = tuple(_rule(name, table) for name, table in parse_table("rules", doc["rules"]).items())
    return PromotionSettings(policy, rules, source)
