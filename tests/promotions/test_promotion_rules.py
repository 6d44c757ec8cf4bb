"""The rules file: the bundled file, every validation message, environment overrides, the docs."""

from __future__ import annotations

import copy
import re
import sys
from datetime import time
from pathlib import Path
from typing import Any

import pytest

from channelflow.config import DEFAULT_PROMOTIONS, ConfigError, load_promotions
from operators.promotions.rules import Offer
from operators.promotions.rules_file import TRIGGERS, promotions_from_mapping
from operators.promotions.triggers.back_in_stock import BackInStock
from operators.promotions.triggers.birthday import Birthday

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DOCS = Path(__file__).resolve().parents[2] / "docs" / "promotions.md"


def bundled() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_PROMOTIONS.read_text(encoding="utf-8"))


def test_the_bundled_file_has_an_enabled_example_for_every_trigger() -> None:
    settings = load_promotions(environ={})
    assert sorted({r.trigger for r in settings.rules if r.enabled}) == sorted(TRIGGERS)
    restock = next(r for r in settings.rules if r.trigger == "back_in_stock")
    assert restock.params == BackInStock(500, 30 * 86_400_000)
    assert next(r for r in settings.rules if r.trigger == "birthday").params == Birthday(time(10, 0))
    assert settings.policy.attribution_window_ms == 3 * 86_400_000
    assert settings.rule("win_back") is not None
    assert settings.rule("win_back").offer == Offer("amount_off", 10_000)  # type: ignore[union-attr]


def mutate(path: str, value: Any) -> dict[str, Any]:
    """The bundled document with the dotted ``path`` set to ``value`` (``...`` deletes it)."""
    doc = copy.deepcopy(bundled())
    *parents, last = path.split(".")
    table = doc
    for part in parents:
        table = table[part]
    if value is ...:
        del table[last]
    else:
        table[last] = value
    return doc


@pytest.mark.parametrize(("path", "value", "message"), [
    ("rules.cart_reminder.delay", "soon",
     "rules.cart_reminder.delay: expected a duration such as '30s', '5m', '2h' or '90d', got 'soon'"),
    ("rules.cart_reminder.delay", "0s", "rules.cart_reminder.delay: expected a duration > 0, got '0s'"),
    ("rules.cart_reminder.delay", ..., "rules.cart_reminder.delay: missing"),
    ("rules.cart_reminder.views", 3, "rules.cart_reminder.views: unknown key"),
    ("rules.cart_reminder.trigger", "cart_left", "rules.cart_reminder.trigger: expected one of 'cart_abandoned'"),
    ("rules.cart_reminder.trigger", ..., "rules.cart_reminder.trigger: missing"),
    ("rules.cart_reminder.channel", "fax", "rules.cart_reminder.channel: expected one of 'email', 'push'"),
    ("rules.cart_reminder.enabled", "yes", "rules.cart_reminder.enabled: expected true or false, got 'yes'"),
    ("rules.cart_reminder.priority", -1, "rules.cart_reminder.priority: expected an integer 0..1000000, got -1"),
    ("rules.cart_reminder.daily_budget", 0,
     "rules.cart_reminder.daily_budget: expected an integer >= 1 or 'unlimited', got 0"),
    ("rules.cart_reminder.offer", {"kind": "percent_off"},
     "rules.cart_reminder.offer.value: missing (a percent_off offer needs a percentage)"),
    ("rules.cart_reminder.offer", {"kind": "percent_off", "value": 120},
     "rules.cart_reminder.offer.value: expected a number > 0 and <= 100, got 120"),
    ("rules.cart_reminder.offer", {"kind": "amount_off", "value": 0.0001},
     "rules.cart_reminder.offer.value: expected an amount in major units > 0 and < 1000000000 with at most 3 decimals"),
    ("rules.cart_reminder.offer", {"kind": "free_shipping", "value": 5},
     "rules.cart_reminder.offer.value: a free_shipping offer takes no value"),
    ("rules.cart_reminder.offer", {"kind": "gift"}, "rules.cart_reminder.offer.kind: expected one of"),
    ("rules.cart_reminder.offer", {"kind": "message", "skus": ["A", "A"]},
     "rules.cart_reminder.offer.skus[1]: 'A' is listed twice"),
    ("rules.browse_nudge.views", 0, "rules.browse_nudge.views: expected an integer 1..1000, got 0"),
    ("rules.win_back.threshold", 1.5, "rules.win_back.threshold: expected a number > 0 and <= 1, got 1.5"),
    ("rules.gold_tier.threshold", "lots",
     "rules.gold_tier.threshold: expected an amount in major units > 0 and < 1000000000 with at most 3 decimals, got 'lots'"),
    ("rules.back_in_stock.waitlist_size", 0, "rules.back_in_stock.waitlist_size: expected an integer"),
    ("rules.few_left.max_available", 0, "rules.few_left.max_available: expected an integer >= 1, got 0"),
    ("rules.birthday.send_at", "10am", "rules.birthday.send_at: expected a local time 'HH:MM', got '10am'"),
    ("rules.Bad-Name", {}, "rules.Bad-Name: a rule name is a lower-case letter"),
    ("rules.cart\n", {}, "rules.cart\n: a rule name is a lower-case letter"),
    ("rules.birthday.send_at", "10:00\n", "rules.birthday.send_at: expected a local time 'HH:MM'"),
    ("rules.cart_reminder.delay", "\u0665h", "rules.cart_reminder.delay: expected a duration"),
    ("rules.cart_reminder.offer", {"kind": "amount_off", "value": 1e300},
     "rules.cart_reminder.offer.value: expected an amount in major units > 0 and < 1000000000"),
    ("policy.unknown_consent", "maybe", "policy.unknown_consent: expected one of 'allow', 'deny', got 'maybe'"),
    ("policy.frequency_caps.email", [{"count": 0, "window": "1d"}],
     "policy.frequency_caps.email[0].count: expected an integer 1..1000000, got 0"),
    ("policy.frequency_caps.email", [{"count": 1}], "policy.frequency_caps.email[0].window: missing"),
    ("policy.frequency_caps.fax", [], "policy.frequency_caps.fax: unknown key"),
    ("policy.frequency_caps.till", ..., "policy.frequency_caps.till: missing"),
    ("policy.quiet_hours.default_timezone", "Mars/Olympus",
     "policy.quiet_hours.default_timezone: expected an IANA time zone"),
    ("policy.quiet_hours.channels", ["email", "pager"], "policy.quiet_hours.channels[1]: expected one of"),
    ("policy.holdout.percent", 101, "policy.holdout.percent: expected a number >= 0 and <= 100, got 101"),
    ("policy.holdout.salt", "", "policy.holdout.salt: expected a non-empty string, got ''"),
    ("policy.attribution_window", "3 days", "policy.attribution_window: expected a duration"),
    ("extras", {}, "extras: unknown section (known: policy, rules)"),
    ("rules", ..., "rules: missing section"),
])
def test_every_bad_value_names_its_key(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        promotions_from_mapping(mutate(path, value))
    assert str(raised.value).startswith(message)


def test_environment_overrides_and_their_errors() -> None:
    env = {"CHANNELFLOW_PROMOTIONS__RULES__CART_REMINDER__DELAY": "2h",
           "CHANNELFLOW_PROMOTIONS__POLICY__HOLDOUT__PERCENT": "5",
           "CHANNELFLOW_KAFKA__BROKERS": "elsewhere:9092"}  # the main config's: not ours
    settings = load_promotions(environ=env)
    assert settings.rule("cart_reminder").params.delay_ms == 2 * 3_600_000  # type: ignore[union-attr]
    assert settings.policy.holdout.percent == 5.0
    with pytest.raises(ConfigError, match=r"^rules\.win_back\.threshold: expected a number"):
        load_promotions(environ={"CHANNELFLOW_PROMOTIONS__RULES__WIN_BACK__THRESHOLD": "high"})


def test_the_main_config_ignores_the_promotions_files_overrides() -> None:
    from channelflow.config import load_config

    env = {"CHANNELFLOW_PROMOTIONS__RULES__CART_REMINDER__DELAY": "2h", "CHANNELFLOW_KAFKA__BROKERS": "k:9092"}
    assert load_config(environ=env).kafka.brokers == ("k:9092",)
    assert load_promotions(environ=env).rule("cart_reminder").params.delay_ms == 2 * 3_600_000  # type: ignore[union-attr]


def test_file_problems_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_promotions(tmp_path / "nope.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[rules\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_promotions(bad, environ={})
    chosen = tmp_path / "chosen.toml"
    chosen.write_text(DEFAULT_PROMOTIONS.read_text(encoding="utf-8").replace('delay = "1h"', 'delay = "45m"'),
                      encoding="utf-8")
    settings = load_promotions(environ={"CHANNELFLOW_PROMOTIONS": str(chosen)})
    assert settings.source == chosen
    assert settings.rule("cart_reminder").params.delay_ms == 45 * 60_000  # type: ignore[union-attr]


def test_the_docs_describe_every_trigger_and_every_key_of_the_bundled_file() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    doc = bundled()
    keys = set(doc["policy"]) | set(doc["policy"]["quiet_hours"]) | set(doc["policy"]["holdout"])
    keys |= {key for table in doc["rules"].values() for key in table}
    for name in (*TRIGGERS, *sorted(keys)):
        assert re.search(rf"`{name}`", docs), name
