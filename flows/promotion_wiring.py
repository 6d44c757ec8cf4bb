"""Promotions in the flow: two stages after the customer, churn and inventory stages, and their metrics.

The ``promotions`` stage is keyed by customer (``shard_of(customer key)``) and
ordered: it receives each scored customer's activity with their profile facts
(identity and customers stages), churn scores (churn stage), erasures, and
SKU stock levels (inventory stage, to every shard), applies them in
event-time order and runs the triggers. What fires goes as a candidate on the
``promotion_candidates`` stream to the ``promotion_gate`` stage: one ordered
shard, which also reads the stock levels, and decides (policy, exact daily
budgets and waitlists, quiet hours, holdout, attribution), writing the
``promotions`` and ``promotion_decisions`` topics. The same log gives the same
records with any number of shards and processes and at any replay speed.
"""

from __future__ import annotations

from collections import Counter

from flows import metrics
from flows.domain_spec import DomainSpec
from flows.topology import PROMOTION_GATE, PROMOTIONS, PUBLISHES, READS
from operators.contract.money import from_millis
from operators.promotions.attribution import group_of, uplift
from operators.promotions.domain import Promotions, promotions_shards
from operators.promotions.gate import PromotionGate
from operators.promotions.rules import PromotionSettings
from operators.time.stream_items import Signal


def route_promotion(signal: Signal, shards: int) -> set[int]:
    return promotions_shards(signal.body, shards)


def route_gate(_signal: Signal, _shards: int) -> tuple[int]:
    return (0,)


class PromotionMetrics:
    """Adds each shard's drained counts to the counters; keeps the uplift gauges."""

    def __init__(self) -> None:
        self._recorded: Counter[tuple[str, str]] = Counter()
        self._converted: Counter[tuple[str, str]] = Counter()

    def observe_shard(self, _shard: int, gate: PromotionGate) -> None:
        counts = gate.drain()
        for (rule, outcome), n in counts.outcomes.items():
            metrics.PROMOTIONS.labels(rule, outcome).inc(n)
            if outcome in ("sent", "holdout"):
                group = group_of(outcome == "holdout")
                self._recorded[rule, group] += n
                # A recorded group's conversions and revenue are 0 until it converts, not absent.
                metrics.PROMOTION_CONVERSIONS.labels(rule, group)
                metrics.ATTRIBUTED_REVENUE.labels(rule, group)
        conversions = counts.conversions
        for (rule, group), n in conversions.conversions.items():
            metrics.PROMOTION_CONVERSIONS.labels(rule, group).inc(n)
            self._converted[rule, group] += n
        for (rule, group), millis in conversions.revenue_millis.items():
            metrics.ATTRIBUTED_REVENUE.labels(rule, group).inc(from_millis(millis))
        for rule, n in conversions.redemptions.items():
            metrics.PROMOTION_REDEMPTIONS.labels(rule).inc(n)
        if counts.outcomes or conversions.conversions:
            for rule, report in uplift(self._recorded, self._converted).items():
                if report.treated_rate is not None:
                    metrics.PROMOTION_CONVERSION_RATE.labels(rule, "treated").set(report.treated_rate)
                if report.holdout_rate is not None:
                    metrics.PROMOTION_CONVERSION_RATE.labels(rule, "holdout").set(report.holdout_rate)
                if report.uplift is not None:
                    metrics.PROMOTION_UPLIFT.labels(rule).set(report.uplift)


def promotion_specs(settings: PromotionSettings, shards: int) -> list[DomainSpec]:
    """The customer-sharded ``promotions`` stage and the one-shard ``promotion_gate`` after it."""
    observed = PromotionMetrics()
    return [
        DomainSpec(
            PROMOTIONS,
            route_promotion,
            lambda shard: Promotions(settings, shard, shards, local_gate=False),
            reads=READS[PROMOTIONS],
            publishes=PUBLISHES[PROMOTIONS],
            ordered=True,
        ),
        DomainSpec(
            PROMOTION_GATE,
            route_gate,
            lambda _shard: PromotionGate(settings),
            observed.observe_shard,
            reads=READS[PROMOTION_GATE],
            shards=1,
            ordered=True,
        ),
    ]
