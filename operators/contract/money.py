"""Exact money: amounts are kept as integer milli-units of the major unit.

The contract carries money as JSON numbers in major units (at most 3 decimal
places, see ``operators.contract.events``). Summing floats drifts; summing integers
does not, so every amount is converted once, on the way in, and back only
when a record is written.

>>> to_millis(2.55)
2550
>>> sum(to_millis(0.1) for _ in range(10)) == to_millis(1)
True
>>> from_millis(9747747934)
9747747.934
"""

from __future__ import annotations

from decimal import Decimal

MILLIS_PER_UNIT = 1000


def to_millis(amount: int | float | str) -> int:
    """Major units (as JSON gives them) to integer milli-units, exactly."""
    if isinstance(amount, int):
        return amount * MILLIS_PER_UNIT
    scaled = Decimal(repr(amount) if isinstance(amount, float) else amount) * MILLIS_PER_UNIT
    millis = int(scaled)
    if millis != scaled:
        raise ValueError(f"{amount} has more than 3 decimal places")
    return millis


def from_millis(millis: int) -> float:
    """Integer milli-units back to major units, for output records."""
    return millis / MILLIS_PER_UNIT
