"""The routing rule for ship order lines: which location reserves the stock.

Candidates are the configured ship-from locations, each with a rank (lower
ranks first). The rule, per line of ``qty`` units:

1. locations whose available stock covers ``qty`` win: the best rank among
   them, ties broken by the highest availability, then by location id;
2. if none can fill the line, the location with the highest availability,
   ties broken by the best rank, then by location id (the line is then short:
   reserved all the same, and flagged ``oversold``);
3. with no candidates at all the line is not routed.

>>> ranked = [(0, "W1"), (1, "W2"), (1, "S1")]
>>> choose_location(ranked, {"W1": 2, "W2": 9, "S1": 5}, qty=4)
RouteChoice(location_id='W2', filled=True, available=9)
>>> choose_location(ranked, {"W1": 2, "W2": 1, "S1": 3}, qty=4)
RouteChoice(location_id='S1', filled=False, available=3)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple


class RouteChoice(NamedTuple):
    """The chosen location (None: no candidate), whether it covers the line, its availability."""

    location_id: str | None
    filled: bool
    available: int


def choose_location(ranked: Sequence[tuple[int, str]], available: Mapping[str, int], qty: int) -> RouteChoice:
    """Apply the routing rule to ``(rank, location_id)`` candidates and their availability."""
    if not ranked:
        return RouteChoice(None, False, 0)
    fillers = [(rank, loc) for rank, loc in ranked if available[loc] >= qty]
    if fillers:
        _, loc = min(fillers, key=lambda c: (c[0], -available[c[1]], c[1]))
        return RouteChoice(loc, True, available[loc])
    _, loc = min(ranked, key=lambda c: (-available[c[1]], c[0], c[1]))
    return RouteChoice(loc, False, available[loc])
