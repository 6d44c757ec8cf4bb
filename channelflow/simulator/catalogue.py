"""The product catalogue: SKUs with list prices and a long-tailed popularity."""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass
from itertools import accumulate

CATEGORIES = (
    "mugs", "kettles", "towels", "lamps", "cushions", "rugs", "candles", "plates",
    "glasses", "pans", "knives", "throws", "vases", "frames", "baskets", "clocks",
)  # fmt: skip


@dataclass(frozen=True)
class Catalogue:
    """SKU ids, list prices in cents, and cumulative popularity weights for sampling.

    >>> cat = Catalogue.generate(random.Random(1), 20)
    >>> cat.skus[17], len(cat.price_cents)
    ('SKU-00017', 20)
    """

    skus: tuple[str, ...]
    price_cents: tuple[int, ...]
    category: tuple[str, ...]
    popularity: tuple[float, ...]
    cumulative: tuple[float, ...]
    by_popularity: tuple[int, ...]

    @classmethod
    def generate(cls, rng: random.Random, count: int) -> Catalogue:
        """``count`` SKUs with log-normal prices (median about 20) and Zipf-like demand."""
        prices = tuple(max(199, int(rng.lognormvariate(3.0, 0.75)) * 100 + 99) for _ in range(count))
        ranks = list(range(count))
        rng.shuffle(ranks)
        weights = [1.0 / (rank + 1) ** 0.9 for rank in ranks]
        total = sum(weights)
        popularity = tuple(w / total for w in weights)
        return cls(
            skus=tuple(f"SKU-{i:05d}" for i in range(count)),
            price_cents=prices,
            category=tuple(CATEGORIES[i % len(CATEGORIES)] for i in range(count)),
            popularity=popularity,
            cumulative=tuple(accumulate(popularity)),
            by_popularity=tuple(sorted(range(count), key=lambda i: -popularity[i])),
        )

    def pick(self, rng: random.Random) -> int:
        """The index of a SKU drawn by popularity."""
        return min(bisect(self.cumulative, rng.random()), len(self.skus) - 1)
