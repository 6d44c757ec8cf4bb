"""Value parsers of the rules file that ``operators.settings`` does not have: numbers, money, local times.

Each takes ``(key, raw value)`` and returns the typed value or raises
:class:`~operators.settings.ConfigError` whose message starts with the key;
rule sections and trigger modules (``operators.promotions.triggers``) share them.

>>> parse_money("rules.gold.threshold", 1000.5)
1000500
>>> parse_local_time("rules.birthday.send_at", "10:00")
datetime.time(10, 0)
>>> parse_number(0.0, 1.0, exclusive_min=True)("rules.win_back.threshold", 0)
Traceback (most recent call last):
...
operators.settings.ConfigError: rules.win_back.threshold: expected a number > 0 and <= 1, got 0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import time
from typing import Any

from operators.contract.money import to_millis
from operators.settings import fail, parse_hhmm

__all__ = ["parse_local_time", "parse_money", "parse_number"]


def parse_number(minimum: float, maximum: float, *, exclusive_min: bool = False) -> Callable[[str, Any], float]:
    """A parser of a finite number in ``[minimum, maximum]`` (``(minimum, maximum]`` if ``exclusive_min``)."""

    def parse(key: str, value: Any) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or value > maximum or value < minimum or (exclusive_min and value == minimum):
            low = f"> {minimum:g}" if exclusive_min else f">= {minimum:g}"
            raise fail(key, f"a number {low} and <= {maximum:g}", value)
        return value

    return parse


def parse_money(key: str, value: Any) -> int:
    """Major units (> 0, at most 3 decimals) to milli-units."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        try:
            return to_millis(value)
        except ValueError:
            pass
    raise fail(key, "an amount in major units > 0 with at most 3 decimals", value)


def parse_local_time(key: str, value: Any) -> time:
    """``"HH:MM"`` to a :class:`~datetime.time`."""
    hours, minutes = parse_hhmm(key, value).split(":")
    return time(int(hours), int(minutes))
