"""Settings files: the error that names a key, and the value parsers every settings section uses.

Pure functions, shared by the shell (which reads the TOML files) and by the
domains that declare how their own sections parse (promotion triggers). Each
parser takes ``(key, raw value)`` and returns the typed value or raises
:class:`ConfigError` whose message starts with the dotted key.

>>> parse_duration("time.allowed_lateness", "30s")
30000
>>> parse_duration("time.allowed_lateness", "soon")
Traceback (most recent call last):
...
operators.settings.ConfigError: time.allowed_lateness: expected a duration such as '30s', '5m', '2h' or '90d', got 'soon'
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import time
from typing import Any

from operators.contract.events import MONEY_LIMIT, is_timezone
from operators.contract.money import to_millis

# ASCII digits and \Z: ``\d`` takes any script's digits, and ``$`` matches before a final newline.
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)\s*\Z", re.ASCII)
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_MAX_DURATION_S = 100 * 365 * 86_400
_HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]\Z")

class ConfigError(ValueError):
    """Invalid configuration; the message starts with the offending key."""




def fail(key: str, expected: str, got: Any) -> ConfigError:
    shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
    return ConfigError(f"{key}: expected {expected}, got {shown}")


def parse_str(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail(key, "a non-empty string", value)
    return value


def parse_int(minimum: int, maximum: int | None = None) -> Callable[[str, Any], int]:
    def parse(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(key, "an integer", value)
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f">= {minimum}" if maximum is None else f"{minimum}..{maximum}"
            raise fail(key, f"an integer {bounds}", value)
        return value

    return parse


def parse_positive_duration(key: str, value: Any) -> int:
    millis = parse_duration(key, value)
    if millis <= 0:
        raise fail(key, "a duration > 0", value)
    return millis


def parse_duration(key: str, value: Any) -> int:
    """Milliseconds from '500ms', '30s', '5m', '2h', '90d' (or a bare number of seconds)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= _MAX_DURATION_S:
        return round(value * 1000)
    match = _DURATION.match(value) if isinstance(value, str) else None
    millis = round(float(match.group(1)) * _UNIT_MS[match.group(2)]) if match else -1
    if not 0 <= millis <= _MAX_DURATION_S * 1000:
        raise fail(key, "a duration such as '30s', '5m', '2h' or '90d'", value)
    return millis


def parse_brokers(key: str, value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise fail(key, "a list of 'host:port' strings", value)
    brokers = tuple(parse_str(f"{key}[{i}]", b).strip() for i, b in enumerate(items))
    for i, broker in enumerate(brokers):
        host, _, port = broker.rpartition(":")
        if not host or not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
            raise fail(f"{key}[{i}]", "'host:port'", broker)
    return brokers


def parse_timezone(key: str, value: Any) -> str:
    name = parse_str(key, value)
    if not is_timezone(name):
        raise fail(key, "an IANA time zone such as 'Europe/London'", value)
    return name


def parse_one_of(*allowed: str) -> Callable[[str, Any], str]:
    def parse(key: str, value: Any) -> str:
        if value not in allowed:
            raise fail(key, "one of " + ", ".join(repr(a) for a in allowed), value)
        return str(value)

    return parse


def parse_hhmm(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _HHMM.match(value):
        raise fail(key, "a local time 'HH:MM'", value)
    return value


def parse_table(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(key, "a table", value)
    return value


def take(table: Mapping[str, Any], section: str, spec: Mapping[str, Callable[[str, Any], Any]]) -> dict[str, Any]:
    """Parse every key of ``spec`` from ``table``; unknown or missing keys are errors."""
    unknown = sorted(set(table) - set(spec))
    if unknown:
        raise ConfigError(f"{section}.{unknown[0]}: unknown key (known: {', '.join(spec)})")
    missing = [k for k in spec if k not in table]
    if missing:
        raise ConfigError(f"{section}.{missing[0]}: missing")
    return {k: parse(f"{section}.{k}", table[k]) for k, parse in spec.items()}




def check_sections(doc: Mapping[str, Any], sections: tuple[str, ...]) -> None:
    """ConfigError naming the first unknown or missing top-level section."""
    unknown = sorted(set(doc) - set(sections))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section (known: {', '.join(sections)})")
    for name in sections:
        if name not in doc:
            raise ConfigError(f"{name}: missing section")


def parse_number(
    minimum: float, maximum: float = math.inf, *, exclusive_min: bool = False
) -> Callable[[str, Any], float]:
    """A parser of a finite number in ``[minimum, maximum]`` (``(minimum, maximum]`` if ``exclusive_min``).

    >>> parse_number(0, 1)("churn.at_risk", 0.5)
    0.5
    >>> parse_number(0, exclusive_min=True)("anomaly.basket_z", 0)
    Traceback (most recent call last):
    ...
    operators.settings.ConfigError: anomaly.basket_z: expected a number > 0, got 0
    """

    def parse(key: str, value: Any) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or value > maximum or value < minimum or (exclusive_min and value == minimum):
            low = f"> {minimum:g}" if exclusive_min else f">= {minimum:g}"
            high = f" and <= {maximum:g}" if math.isfinite(maximum) else ""
            raise fail(key, f"a number {low}{high}", value)
        return value  # an int stays an int: an offer of 10 is published as 10, not 10.0

    return parse


def parse_money(key: str, value: Any, *, zero: bool = False) -> int:
    """Major units (> 0, or >= 0 with ``zero``; below the contract's ``MONEY_LIMIT``; at most 3
    decimals) to milli-units.

    >>> parse_money("rules.r.offer.value", 2.5), parse_money("customers.tiers.bronze", 0, zero=True)
    (2500, 0)
    >>> parse_money("customers.tiers.gold", float("inf"))
    Traceback (most recent call last):
    ...
    operators.settings.ConfigError: customers.tiers.gold: expected an amount in major units > 0 and < 1000000000 with at most 3 decimals, got inf
    """
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if number and (value >= 0 if zero else value > 0) and value < MONEY_LIMIT:
        try:
            return to_millis(value)
        except ValueError:
            pass
    raise fail(key, f"an amount in major units {'>=' if zero else '>'} 0 and < {MONEY_LIMIT} with at most 3 decimals", value)


def parse_local_time(key: str, value: Any) -> time:
    """``"HH:MM"`` to a :class:`~datetime.time`."""
    hours, minutes = parse_hhmm(key, value).split(":")
    return time(int(hours), int(minutes))
