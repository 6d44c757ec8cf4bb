"""The anomaly domain: KPI windows scored by a detector per series, and per-event outlier checks.

A shard owns the window groups (``web``, ``app``, ``store``, ``store:S001``...)
with ``group_shard(group) == shard`` and the SKUs with ``shard_of(sku) == shard``.
Each group has one event-time timer at the end of its current window; when
the watermark passes it, the window closes (also when it is empty: an outage
is a run of zeros), every measure of it is scored by that series' detector,
and the next window's timer is set. After ``idle_windows`` empty windows in a
row a group goes idle (no timer) until its next event, so a gap in event time
costs at most ``idle_windows`` closes, never one per window of the gap. A store's
windows are scored only while the store is open (configured hours), and its timer
jumps over closed hours to the window of its next opening. Count measures are
tested by a :class:`SeasonalCounts` per series, online channels' orders per
checkout by a :class:`ConversionCusum`; the context detector (``detector``) runs on
``context_measures`` only (one per set of open stores for the ``store`` channel), its
:class:`AlarmGate` deciding which scores alert. A group publishes one alert per
direction and episode. Every test learns every window it scores. See
``docs/anomalies.md``.

>>> from operators.contract.events import Event
>>> from operators.time.shard import DomainShard
>>> from operators.time.stream_items import Progress
>>> settings = AnomalySettings(window_ms=60_000, params=KpiParams(warmup=10))
>>> shard = DomainShard(Anomalies(settings), upstreams=1)
>>> for minute in range(60):  # a store selling 2 to 4 baskets a minute, then nothing
...     for i in range(2 + minute % 3 if minute < 50 else 0):
...         _ = shard.on_event(Event(f"e{minute}-{i}", "sale", "pos", minute * 60_000 + i,
...                                  {"store_id": "S9", "total": 10.0, "lines": []}))
>>> alerts = shard.on_progress(Progress(0, 60 * 60_000))
>>> sorted({(a.value["series"], a.value["kind"], a.value["window_start"]) for a in alerts})[:2]
[('orders:store', 'drop', '1970-01-01T00:55:00.000Z'), ('orders:store:S9', 'drop', '1970-01-01T00:55:00.000Z')]
"""

from __future__ import annotations

import zlib
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from operators.anomalies.base import KpiScorer
from operators.anomalies.conversion import ConversionCusum
from operators.anomalies.counts import SeasonalCounts
from operators.anomalies.detectors import DETECTORS, KpiParams, make_detector
from operators.anomalies.gate import AlarmGate
from operators.anomalies.outliers import BasketOutliers, Finding, PriceOutliers
from operators.anomalies.settings import DEFAULT_SUPPRESS_K
from operators.anomalies.windows import KpiWindows, Window, groups_of, is_online, series_name
from operators.contract.dead_letter import iso_ms
from operators.contract.events import Event
from operators.time.shard import DomainShard, changed_settings
from operators.time.sharding import shard_of
from operators.time.stream_items import Output
from operators.time.timers import Timer

__all__ = [
    "CHANNEL_GROUPS", "TOPIC", "Anomalies", "AnomalySettings", "StoreHours", "anomaly_shards", "group_shard", "priced_skus",
]

TOPIC = "alerts"
_TIMER = "w:"

#: The count measures scored by :class:`~operators.anomalies.counts.SeasonalCounts` by default.
COUNT_MEASURES = ("orders", "sessions")


@dataclass(frozen=True)
class StoreHours:
    """A store's local opening hours: ``opens`` to ``closes`` in ``timezone`` (closes may be past midnight)."""

    timezone: str
    opens: time
    closes: time

    def is_open(self, start_ms: int, end_ms: int) -> bool:
        """True if the store is open over the whole of ``[start_ms, end_ms)``."""
        zone = ZoneInfo(self.timezone)
        return self._open_at(datetime.fromtimestamp(start_ms / 1000, zone).time()) and self._open_at(
            datetime.fromtimestamp((end_ms - 1) / 1000, zone).time()
        )

    def next_open(self, ts_ms: int) -> int:
        """The first instant at or after ``ts_ms`` when the store is open (``ts_ms`` itself if open now)."""
        zone = ZoneInfo(self.timezone)
        now = datetime.fromtimestamp(ts_ms / 1000, zone)
        if self._open_at(now.time()):
            return ts_ms
        for days in (0, 1, 2):
            opening = datetime.combine(now.date() + timedelta(days=days), self.opens, zone)
            opening_ms = int(opening.timestamp() * 1000)
            if opening_ms >= ts_ms:
                return opening_ms
        return ts_ms  # unreachable for a store that opens every day

    def offset_ms(self, ts_ms: int) -> int:
        """The store's UTC offset at ``ts_ms`` (local wall-clock ms = ``ts_ms + offset_ms``)."""
        offset = datetime.fromtimestamp(ts_ms / 1000, ZoneInfo(self.timezone)).utcoffset()
        return 0 if offset is None else int(offset.total_seconds() * 1000)

    def _open_at(self, local: time) -> bool:
        if self.opens < self.closes:
            return self.opens <= local < self.closes
        return local >= self.opens or local < self.closes


@dataclass(frozen=True)
class AnomalySettings:
    """The ``[anomaly]`` config as the domain uses it (durations in ms).

    ``detector`` names one of ``operators.anomalies.detectors.DETECTORS``, built
    with ``params``; ``threshold`` is the calibrated score that alerts and
    ``suppress_k`` the :class:`AlarmGate`'s ``k`` (windows); a group goes idle after
    ``idle_windows`` empty windows in a row; ``conversion`` is scored only in
    windows with ``min_sessions`` sessions; ``store_hours`` lists configured
    stores (others are scored at every hour); the prices of ``unpriced_skus``
    (postage, fees, manual lines: no regular price) are not checked.
    """

    window_ms: int = 15 * 60_000
    session_timeout_ms: int = 30 * 60_000
    detector: str = "kpi"
    threshold: float = DETECTORS["kpi"]
    params: KpiParams = field(default_factory=KpiParams)
    suppress_k: int = DEFAULT_SUPPRESS_K
    idle_windows: int = 96
    store_hours: Mapping[str, StoreHours] = field(default_factory=dict)
    min_sessions: int = 20
    basket_z: float = 6.0
    basket_warmup: int = 200
    price_deviation: float = 0.5
    price_warmup: int = 5
    outlier_cooldown_ms: int = 3_600_000
    count_measures: tuple[str, ...] = COUNT_MEASURES
    count_nats: float = 3.0
    count_drop: float = 0.2
    count_spike: float = 2.5
    count_half_life: float = 8.0
    count_level_half_life: float = 8.0
    count_period_ms: int = 86_400_000
    context_measures: tuple[str, ...] = ()
    episode_quiet: int = 4
    checkout_test: bool = True
    checkout_nats: float = 2.5
    unpriced_skus: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"detector: expected one of {', '.join(DETECTORS)}, got {self.detector!r}")
        if self.window_ms <= 0:
            raise ValueError(f"window_ms: must be > 0, got {self.window_ms}")
        if self.idle_windows < 1:
            raise ValueError(f"idle_windows: must be >= 1, got {self.idle_windows}")


def priced_skus(event: Event) -> list[tuple[str, float]]:
    """``(sku, unit price)`` pairs an event shows: product views and carts with a price, order and sale lines.

    >>> priced_skus(Event("e", "add_to_cart", "clickstream", 0, {"sku": "A", "qty": 1, "price": 2.5}))
    [('A', 2.5)]
    """
    body = event.body
    kind = event.type
    if kind == "order_placed" or kind == "sale":
        return [(line["sku"], line["unit_price"]) for line in body["lines"]]
    if (kind == "add_to_cart" or kind == "product_view") and body.get("price") is not None:
        return [(body["sku"], body["price"])]
    return []


#: The contract's channel groups. Each has a window every minute and most of the events, so
#: they go on shards 0, 1, 2 (modulo the shard count), one per worker as far as the workers go
#: (``flows.placement``), rather than where their hash falls: ``shard_of`` puts all three on odd
#: shards of 8, that is on one worker of two.
CHANNEL_GROUPS = ("web", "app", "store")


@lru_cache(maxsize=4_096)  # asked per event; bounded by the configured stores
def group_shard(group: str, shards: int, placed: bool = True) -> int:
    """The shard of a window group or channel: the channel groups in :data:`CHANNEL_GROUPS`
    order when ``placed``, the others (stores) by ``shard_of``. ``placed=False`` is the
    placement of state written before channel groups were placed.

    >>> [group_shard(g, 8) for g in CHANNEL_GROUPS], group_shard("web", 8, placed=False)
    ([0, 1, 2], 1)
    """
    if placed and group in CHANNEL_GROUPS:
        return CHANNEL_GROUPS.index(group) % shards
    return shard_of(group, shards)


def anomaly_shards(event: Event, shards: int, placed: bool = True) -> set[int]:
    """The anomaly shards ``event`` must reach: those of its window groups (:func:`group_shard`)
    and of its priced SKUs."""
    targets = {group_shard(group, shards, placed) for group in groups_of(event)}
    if event.type in ("order_placed", "sale", "add_to_cart", "product_view"):
        targets.update(shard_of(sku, shards) for sku, _ in priced_skus(event))
    return targets


class _Series:
    """One series' detector and alarm gate."""

    __slots__ = ("detector", "gate")

    def __init__(self, detector: KpiScorer, gate: AlarmGate) -> None:
        self.detector = detector
        self.gate = gate


@dataclass(slots=True)
class _Candidate:
    """A measure of a window that would alert."""

    score: float
    series: str
    observed: float
    expected: float
    kind: str


class Anomalies:
    """The anomaly domain of shard ``shard`` of ``shards`` (a ``Domain`` for ``DomainShard``)."""

    #: Channel groups on their own shards (:func:`group_shard`); state written before had none.
    placed_groups = False

    def __init__(self, settings: AnomalySettings, shard: int = 0, shards: int = 1, placed_groups: bool = True) -> None:
        self.settings = settings
        self.shard = shard
        self.shards = shards
        self.placed_groups = placed_groups
        self.windows = KpiWindows(settings.window_ms, settings.session_timeout_ms)
        self.baskets = BasketOutliers(z=settings.basket_z, warmup=settings.basket_warmup)
        self.prices = PriceOutliers(settings.price_deviation, warmup=settings.price_warmup,
                                    cooldown_ms=settings.outlier_cooldown_ms)
        self._next_start: dict[str, int] = {}  # group -> start of its next window to close
        self._idle: dict[str, int] = {}  # idle group -> start of the window after its last closed one
        self._empty_run: dict[str, int] = {}  # group -> empty windows in a row
        self._series: dict[str, _Series] = {}
        self._counts: dict[str, SeasonalCounts] = {}
        self._conversion: dict[str, ConversionCusum] = {}
        self._quiet: dict[str, int] = {}  # group in an alert episode -> windows without a candidate since
        self._pruned_at = -1
        #: Events too late for their window (it had closed), counted.
        self.late_for_window = 0
        #: Till events in a configured store's closed hours (not measured), counted.
        self.outside_hours = 0

    def _owns(self, entity: str) -> bool:
        return self.shards == 1 or shard_of(entity, self.shards) == self.shard

    def _owns_group(self, group: str) -> bool:
        """:meth:`_owns` for a window group or channel (a few dozen of them: their shards are cached)."""
        return self.shards == 1 or group_shard(group, self.shards, self.placed_groups) == self.shard

    def reconfigure(self, fresh: Anomalies) -> tuple[str, ...]:
        """Restored: take the flow's group placement from ``fresh`` (it routes events by it; a
        directory keeps the one its state was written with); keep the settings the state was
        written with (but ``unpriced_skus``, taken from ``fresh``), returning those that differ."""
        self.placed_groups = fresh.placed_groups
        # Which SKUs are checked is a filter, not learned state: the config as it is now.
        self.settings = replace(self.settings, unpriced_skus=fresh.settings.unpriced_skus)
        return changed_settings(self.settings, fresh.settings)

    # -- events -----------------------------------------------------------------

    def on_event(self, event: Event, shard: DomainShard[Any]) -> list[Output]:
        window_ms = self.settings.window_ms
        start = self.windows.start_of(event.ts)
        for group in groups_of(event):
            if not self._owns_group(group):
                continue
            next_start = self._next_start.get(group)
            if next_start is None:
                resume = self._idle.get(group)
                if resume is not None and start < resume:
                    self.late_for_window += 1
                    continue
                self._idle.pop(group, None)
                self._next_start[group] = start
                shard.timers.schedule(_TIMER + group, start + window_ms - 1, start)
            elif start < next_start:
                if self._next_scored(group, start) > start:
                    self.outside_hours += 1  # in a configured store's closed hours, which are not measured
                else:
                    self.late_for_window += 1
                continue
            self.windows.add(event, group)
        kind = event.type
        if kind not in ("order_placed", "sale", "add_to_cart", "product_view"):
            return []
        outputs: list[Output] = []
        channel = event.body.get("channel", "store")
        store = event.body.get("store_id", "online")
        if kind != "add_to_cart" and kind != "product_view" and self._owns_group(channel):
            outputs.extend(self._check_basket(event, channel, store))
        unpriced = self.settings.unpriced_skus
        for sku, price in priced_skus(event):
            if self._owns(sku) and sku not in unpriced:
                finding = self.prices.score_one(sku, price, event.ts)
                if finding is not None:
                    value = self._alert("price:" + sku, event.ts, event.ts, finding.observed, finding.expected,
                                        finding.score, finding.kind, event.ts, event.event_id, channel, store)
                    value["sku"] = sku
                    outputs.append(Output(TOPIC, value["series"], value, event.ts))
        return outputs

    def _check_basket(self, event: Event, channel: str, store: str) -> Iterable[Output]:
        lines = event.body["lines"]
        value = float(event.body["total"])
        quantity = sum(line["qty"] for line in lines)
        findings: list[Finding] = self.baskets.score_one(channel, value, quantity)
        if not findings:
            self.baskets.learn_one(channel, value, quantity)
        for found in findings:
            series = f"{found.kind}:{channel}"
            record = self._alert(series, event.ts, event.ts, found.observed, found.expected, found.score,
                                 found.kind, event.ts, event.event_id, channel, store)
            yield Output(TOPIC, series, record, event.ts)

    # -- windows ----------------------------------------------------------------

    def on_timer(self, timer: Timer[Any], shard: DomainShard[Any]) -> list[Output]:
        group = timer.key[len(_TIMER):]
        start: int = timer.payload
        window_ms = self.settings.window_ms
        window = self.windows.close(group, start)
        empty = self._empty_run.get(group, 0) + 1 if window.last_ts < 0 else 0
        self._empty_run[group] = empty
        if empty >= self.settings.idle_windows:  # idle until the next event: a gap costs no more closes
            del self._next_start[group]
            self._idle[group] = start + window_ms
            self._empty_run[group] = 0
        else:
            following = self._next_scored(group, start + window_ms)
            self._next_start[group] = following
            shard.timers.schedule(timer.key, following + window_ms - 1, following)
        return self._score(window)

    def _next_scored(self, group: str, start: int) -> int:
        """The window start from ``start`` on where ``group`` may be scored: past a configured store's closed hours.

        A store closed overnight costs one timer, not a close per empty window, and its first
        window at opening is measured (a store that does not open is an outage)."""
        hours = self.settings.store_hours
        if not hours or not group.startswith("store"):
            return start
        end = start + self.settings.window_ms
        if group == "store":
            stores = [h for _, h in sorted(hours.items())]
        else:
            own = hours.get(group[6:])
            if own is None:
                return start
            stores = [own]
        if any(h.is_open(start, end) for h in stores):
            return start
        opening = min(h.next_open(start) for h in stores)
        return max(start, self.windows.start_of(opening))

    def _signature(self, window: Window) -> str | None:
        """Which detector set scores this window: None while a configured store is closed."""
        group = window.group
        if group == "store":
            hours = self.settings.store_hours
            if not hours:
                return ""
            open_now = [s for s, h in sorted(hours.items()) if h.is_open(window.start, window.end)]
            return "|" + ",".join(open_now) if open_now else None
        if group.startswith("store:"):
            hours_of = self.settings.store_hours.get(group[6:])
            if hours_of is not None and not hours_of.is_open(window.start, window.end):
                return None
        return ""

    def _detector(self, key: str) -> _Series:
        series = self._series.get(key)
        if series is None:
            settings = self.settings
            gate = AlarmGate(settings.threshold, settings.suppress_k)
            seed = zlib.crc32(key.encode())  # randomised baselines: a seed of the series name, the same everywhere
            series = self._series[key] = _Series(make_detector(settings.detector, settings.params, seed), gate)
        return series

    def _count_test(self, name: str) -> SeasonalCounts:
        counts = self._counts.get(name)
        if counts is None:
            s = self.settings
            counts = self._counts[name] = SeasonalCounts(
                period_ms=s.count_period_ms, half_life=s.count_half_life, level_half_life=s.count_level_half_life,
                drop=s.count_drop, spike=s.count_spike, nats=s.count_nats)
        return counts

    def _local_ms(self, group: str, ts: int) -> int:
        """Wall-clock ms of ``ts`` in the group's time zone (a configured store's; UTC otherwise)."""
        if group.startswith("store:"):
            hours = self.settings.store_hours.get(group[6:])
            if hours is not None:
                return ts + hours.offset_ms(ts)
        return ts

    def _score(self, window: Window) -> list[Output]:
        signature = self._signature(window)
        if signature is None:
            return []
        settings = self.settings
        group = window.group
        channel, _, store = group.partition(":")
        store = store or ("all" if channel == "store" else "online")
        local = self._local_ms(group, window.start)
        candidates: list[_Candidate] = []
        for measure, observed in window.values().items():
            if measure == "conversion" and window.sessions < settings.min_sessions:
                continue  # a ratio of a few sessions is noise
            name = series_name(measure, group)
            alarm = False
            if measure in settings.context_measures:
                state = self._detector(name + signature)
                detector = state.detector
                x: dict[Hashable, Any] = {"value": observed}
                score = detector.score_one(x)
                expected = detector.expected
                _, alarm = state.gate.update(score)
                detector.learn_one(x)
            if measure in settings.count_measures:
                counts = self._count_test(name)
                cx: dict[Hashable, Any] = {"value": observed, "t": local}
                evidence = counts.score_one(cx)
                if evidence >= settings.threshold:
                    candidates.append(_Candidate(evidence, name, observed, counts.expected, counts.direction))
                counts.learn_one(cx)
            if alarm:
                kind = "spike" if observed >= expected else "drop"
                candidates.append(_Candidate(score, name, observed, expected, kind))
        if settings.checkout_test and is_online(group):
            test = self._conversion.get(group)
            if test is None:
                test = self._conversion[group] = ConversionCusum(drop=settings.count_drop, nats=settings.checkout_nats)
            ox: dict[Hashable, Any] = {"orders": window.orders, "checkouts": window.checkouts}
            evidence = test.score_one(ox)
            if evidence >= settings.threshold:
                observed = window.orders / window.checkouts if window.checkouts else 0.0
                candidates.append(_Candidate(evidence, series_name("checkout_conversion", group), observed,
                                             test.p, "drop"))
            test.learn_one(ox)
        outputs: list[Output] = []
        for kind in ("drop", "spike"):
            found = [c for c in candidates if c.kind == kind]
            episode = f"{group}/{kind}"
            quiet = self._quiet.get(episode)
            if not found:
                if quiet is not None:
                    if quiet + 1 >= settings.episode_quiet:
                        del self._quiet[episode]
                    else:
                        self._quiet[episode] = quiet + 1
                continue
            self._quiet[episode] = 0
            if quiet is not None:
                continue  # one alert per episode of a group and direction: later windows, other measures
            best = max(found, key=lambda c: (c.score, c.series))
            record = self._alert(best.series, window.start, window.end, best.observed, best.expected, best.score,
                                 best.kind, window.end, window.last_event_id, channel, store)
            outputs.append(Output(TOPIC, best.series, record, window.end))
        return outputs

    @staticmethod
    def _alert(series: str, start: int, end: int, observed: float, expected: float, score: float, kind: str,
               ts: int, cause: str | None, channel: str, store: str) -> dict[str, Any]:
        return {
            "series": series, "window_start": iso_ms(start), "window_end": iso_ms(end),
            "observed": round(observed, 4), "expected": round(expected, 4), "score": round(score, 4),
            "kind": kind, "ts": iso_ms(ts), "cause_event_id": cause, "channel": channel, "store": store,
        }  # fmt: skip

    def on_watermark(self, shard: DomainShard[Any]) -> list[Output]:
        watermark = shard.watermark
        if watermark is not None and watermark - self._pruned_at >= self.settings.window_ms:
            self.windows.forget_sessions(watermark)
            self._pruned_at = watermark
        return []

    @property
    def sessions_started(self) -> Mapping[str, int]:
        """Sessions started so far in the groups of this shard (cumulative)."""
        return self.windows.sessions_started
