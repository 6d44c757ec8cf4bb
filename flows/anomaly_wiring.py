"""Anomaly detection in the flow: the domain's settings from config, its stage and its metrics."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from flows import metrics
from flows.config import Config
from flows.domain_spec import DomainSpec
from flows.topology import ANOMALY, READS
from operators.anomalies.domain import Anomalies, AnomalySettings, StoreHours, anomaly_shards
from operators.anomalies.kpi import KpiParams
from operators.time.stream_items import Output


def anomaly_settings(config: Config) -> AnomalySettings:
    """The anomaly domain's settings from the ``[anomaly]`` and ``[[locations]]`` config."""
    a = config.anomaly
    hours = {
        loc.id: StoreHours(loc.timezone, loc.opens, loc.closes)
        for loc in config.locations
        if loc.type == "store" and loc.opens and loc.closes
    }
    return AnomalySettings(
        window_ms=a.window_ms,
        session_timeout_ms=a.session_timeout_ms,
        detector=a.detector,
        threshold=a.threshold,
        params=KpiParams(lags=a.lags, sample_size=a.sample_size, warmup=a.warmup),
        suppress_k=a.suppress_k,
        idle_windows=a.idle_windows,
        store_hours=hours,
        min_sessions=a.min_sessions,
        basket_z=a.basket_z,
        basket_warmup=a.basket_warmup,
        price_deviation=a.price_deviation,
        price_warmup=a.price_warmup,
        outlier_cooldown_ms=a.outlier_cooldown_ms,
        count_measures=a.count_measures,
        context_measures=a.context_measures,
        count_nats=a.count_nats,
        checkout_nats=a.checkout_nats,
        count_drop=a.count_drop,
        count_spike=a.count_spike,
        episode_quiet=a.episode_quiet,
        unpriced_skus=frozenset(a.unpriced_skus),
        count_period_ms=a.count_period_ms,
    )


class AnomalyMetrics:
    """Counts alerts by type, channel, store and kind, and sessions started by channel.

    Store labels are limited to configured stores (others: ``other``).
    """

    def __init__(self, stores: Iterable[str]) -> None:
        self.stores = frozenset(stores) | {"online", "all"}
        self._sessions: dict[tuple[int, str], int] = {}  # (shard, group) -> sessions already counted

    def observe_shard(self, shard: int, domain: Anomalies) -> None:
        for group, total in domain.sessions_started.items():
            seen = self._sessions.get((shard, group), 0)
            if total > seen:
                metrics.SESSIONS.labels(group, "online").inc(total - seen)
                self._sessions[shard, group] = total

    def observe_output(self, output: Output) -> None:
        value = output.value
        store = value.get("store", "other")
        metrics.ANOMALIES.labels(
            value["series"].partition(":")[0],
            value.get("channel", "other"),
            store if store in self.stores else "other",
            value["kind"],
        ).inc()


def anomaly_spec(config: Config, *, placed_groups: bool = True) -> DomainSpec:
    """The ``anomaly`` stage: KPI windows, detectors and outlier checks, sharded by group and SKU
    (``placed_groups``: the channel groups on shards of their own, see
    :func:`operators.anomalies.domain.group_shard`).

    Ordered: items are applied in event-time order once the watermark passes them, so the
    alerts are the same at any batch size and process count."""
    settings = anomaly_settings(config)
    shards = config.flow.shards
    observer = AnomalyMetrics(loc.id for loc in config.locations if loc.type == "store")
    return DomainSpec(
        ANOMALY,
        partial(anomaly_shards, placed=placed_groups),
        lambda shard: Anomalies(settings, shard, shards, placed_groups),
        observer.observe_shard,
        observer.observe_output,
        reads=READS[ANOMALY],
        ordered=True,
    )
