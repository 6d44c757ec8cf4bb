"""Customers in the flow: three stages, their settings from config, and their metrics.

::

    sequence ─ identity[shard of the id an event came with] ─ customers[shard of account] ─┐
                    │  (unlinked loyalty cards are scored from here)                       │
                    └────────────────────────────── churn[one shard: the model] ◄─────────┘

identity and customers are ordered stages (items applied in event-time
order), as is churn, so stitching, labels and the model are the same with one
process or several and at any replay speed.
"""

from __future__ import annotations

from flows import metrics
from flows.config import Config
from flows.domain_spec import DomainSpec
from flows.local import LocalFlow
from flows.steps import route_signal
from flows.topology import CHURN, CUSTOMERS, IDENTITY, PUBLISHES, READS
from operators.churn.scores import ChurnScores, ScoreSettings
from operators.customers.accounts import Customers
from operators.customers.book import CustomerBook, CustomerSettings
from operators.customers.identity import Identity, identity_shards
from operators.customers.profile import CustomerProfile
from operators.time.stream_items import Output
from operators.time.units import DAY_MS


def customer_settings(config: Config) -> CustomerSettings:
    return CustomerSettings(
        horizon_ms=config.churn.horizon_ms,
        tick_ms=config.churn.tick_ms,
        device_ttl_ms=config.customers.device_ttl_ms,
        recent_views=config.customers.recent_views,
        tiers=config.customers.tiers,
        learn_every=config.churn.learn_every,
    )


def score_settings(config: Config) -> ScoreSettings:
    churn = config.churn
    return ScoreSettings(churn.model, churn.score_change, churn.at_risk, churn.lapsing, churn.horizon_ms / DAY_MS,
                         churn.warmup, churn.republish_ms, churn.window_ms / DAY_MS)  # fmt: skip


class CustomerMetrics:
    """Profile, link and churn gauges as sums over this process's shards."""

    def __init__(self) -> None:
        self._books: dict[tuple[str, int], tuple[dict[str, int], int, int]] = {}
        self._learned: dict[bool, int] = {True: 0, False: 0}

    def observe_identity(self, shard: int, identity: Identity) -> None:
        self._observe_book(IDENTITY, shard, identity.book, len(identity.links))

    def observe_customers(self, shard: int, customers: Customers) -> None:
        self._observe_book(CUSTOMERS, shard, customers.book, 0)

    def _observe_book(self, stage: str, shard: int, book: CustomerBook, links: int) -> None:
        # Called each time a shard's watermark moves: only counters kept by the book, no scan of profiles.
        self._books[stage, shard] = (dict(book.kinds), links, book.pending_snapshots())
        for kind in ("account", "loyalty", "device"):
            metrics.CUSTOMER_PROFILES.labels(kind).set(sum(k.get(kind, 0) for k, _, _ in self._books.values()))
        metrics.CUSTOMER_LINKS.set(sum(links for _, links, _ in self._books.values()))
        metrics.CHURN_PENDING.set(sum(pending for _, _, pending in self._books.values()))

    def observe_churn(self, _shard: int, stage: ChurnScores) -> None:
        quality = stage.model.quality()
        for model, figures in quality.items():
            metrics.CHURN_AUC.labels(model).set(figures["roc_auc"])
            metrics.CHURN_LOG_LOSS.labels(model).set(figures["log_loss"])
        for label, count in stage.model.learned.items():
            metrics.CHURN_EXAMPLES.labels("churned" if label else "stayed").inc(count - self._learned[label])
            self._learned[label] = count

    def observe_score(self, output: Output) -> None:
        metrics.CUSTOMER_SCORES.labels("erasure" if output.value.get("erased") else "score").inc()


def customer_profiles(flow: LocalFlow) -> dict[str, CustomerProfile]:
    """Every profile held by an in-process run's identity and customers stages, by key."""
    found: dict[str, CustomerProfile] = {}
    for identity in flow.domains(IDENTITY):
        found.update(identity.book.profiles)
    for customers in flow.domains(CUSTOMERS):
        found.update(customers.book.profiles)
    return found


def customer_specs(config: Config) -> list[DomainSpec]:
    """The identity, customers and churn stages."""
    settings, shards = customer_settings(config), config.flow.shards
    scoring = score_settings(config)
    observed = CustomerMetrics()
    return [
        DomainSpec(
            IDENTITY,
            identity_shards,
            lambda shard: Identity(settings, shard, shards),
            observed.observe_identity,
            reads=READS[IDENTITY],
            publishes=PUBLISHES[IDENTITY],
            ordered=True,
        ),
        DomainSpec(
            CUSTOMERS,
            route_signal,
            lambda _shard: Customers(settings),
            observed.observe_customers,
            reads=READS[CUSTOMERS],
            publishes=PUBLISHES[CUSTOMERS],
            ordered=True,
        ),
        DomainSpec(
            CHURN,
            route_signal,
            lambda _shard: ChurnScores(scoring),
            observed.observe_churn,
            observed.observe_score,
            reads=READS[CHURN],
            publishes=PUBLISHES[CHURN],
            shards=1,
            ordered=True,
        ),
    ]


