"""Progress bars for long-running commands: rate and ETA on a terminal, silent otherwise (tqdm)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def on_terminal() -> bool:
    """True when stderr is a terminal (the only place a bar is drawn)."""
    return sys.stderr.isatty()


def progress(items: Iterable[T], *, total: int | None = None, unit: str = "events", desc: str = "") -> Iterator[T]:
    """``items`` with a progress bar on stderr when it is a terminal (``total`` gives the ETA)."""
    yield from tqdm(items, total=total, unit=unit, desc=desc or None, unit_scale=True, mininterval=0.5,
                    disable=not on_terminal(), file=sys.stderr, dynamic_ncols=True)
