"""The anomaly domain: KPI windows scored by a detector per series, and per-event outlier checks.

A shard owns the window groups (``web``, ``app``, ``store``, ``store:S001``...)
with ``shard_of(group) == shard`` and the SKUs with ``shard_of(sku) == shard``.
Each group has one event-time timer at the end of its current window; when
the watermark passes it, the window closes (also when it is empty: an outage
is a run of zeros), every measure of it is scored by that series' detector,
and the next window's timer is set. A store's windows are scored only while
the store is open (configured hours); the ``store`` channel's series have one
detector per set of open stores, so stores opening and closing in their time
zones are not anomalies. See ``docs/anomalies.md``.

>>> from operators.contract.events import Event
>>> from operators.time.shard import DomainShard
>>> from operators.time.stream_items import Progress
>>> settings = AnomalySettings(window_ms=60_000, params=DetectorParams(warmup=5, half_life=10))
>>> shard = DomainShard(Anomalies(settings), upstreams=1)
>>> for minute in range(30):  # a store selling 3 baskets a minute, then nothing
...     for i in range(3 if minute < 20 else 0):
...         _ = shard.on_event(Event(f"e{minute}-{i}", "sale", "pos", minute * 60_000 + i,
...                                  {"store_id": "S9", "total": 10.0, "lines": []}))
>>> alerts = shard.on_progress(Progress(0, 30 * 60_000))
>>> [(a.value["series"], a.value["kind"], a.value["window_start"]) for a in alerts][:2]
[('orders:store', 'drop', '1970-01-01T00:26:00.000Z'), ('orders:store:S9', 'drop', '1970-01-01T00:26:00.000Z')]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from operators.anomalies.detectors import (
    DETECTORS,
    AlarmGate,
    Detector,
    DetectorParams,
    make_detector,
)
from operators.anomalies.outliers import BasketOutliers, Finding, PriceOutliers
from operators.anomalies.windows import KpiWindows, Window, groups_of, series_name
from operators.contract.dead_letter import iso_ms
from operators.contract.events import Event
from operators.time.shard import DomainShard
from operators.time.sharding import shard_of
from operators.time.stream_items import Output
from operators.time.timers import Timer

__all__ = ["TOPIC", "Anomalies", "AnomalySettings", "StoreHours", "anomaly_shards", "priced_skus"]

TOPIC = "alerts"
#: Measures whose values are counts (Poisson noise floor); the others are money or ratios.
COUNT_MEASURES = frozenset({"orders", "add_to_carts", "sessions", "returns"})
_TIMER = "w:"


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

    def _open_at(self, local: time) -> bool:
        if self.opens < self.closes:
            return self.opens <= local < self.closes
        return local >= self.opens or local < self.closes


@dataclass(frozen=True)
class AnomalySettings:
    """The ``[anomaly]`` config as the domain uses it (durations in ms).

    ``detector`` names one of ``operators.anomalies.detectors.DETECTORS``;
    ``threshold`` is its alarm score; ``suppress_k``, ``clear_windows`` and
    ``max_episode_windows`` drive the :class:`AlarmGate`; ``conversion`` is
    scored only in windows with ``min_sessions`` sessions; ``store_hours``
    lists configured stores (others are scored at every hour).
    """

    window_ms: int = 60_000
    session_timeout_ms: int = 30 * 60_000
    detector: str = "cusum"
    threshold: float = DETECTORS["cusum"]
    params: DetectorParams = field(default_factory=DetectorParams)
    suppress_k: int = 10
    clear_windows: int = 5
    max_episode_windows: int = 120
    store_hours: Mapping[str, StoreHours] = field(default_factory=dict)
    min_sessions: int = 20
    basket_z: float = 6.0
    basket_warmup: int = 200
    price_deviation: float = 0.5
    price_warmup: int = 5
    outlier_cooldown_ms: int = 3_600_000

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"detector: expected one of {', '.join(DETECTORS)}, got {self.detector!r}")
        if self.window_ms <= 0:
            raise ValueError(f"window_ms: must be > 0, got {self.window_ms}")


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


def anomaly_shards(event: Event, shards: int) -> set[int]:
    """The anomaly shards ``event`` must reach: those of its window groups and of its priced SKUs."""
    targets = {shard_of(group, shards) for group in groups_of(event)}
    if event.type in ("order_placed", "sale", "add_to_cart", "product_view"):
        targets.update(shard_of(sku, shards) for sku, _ in priced_skus(event))
    return targets


class _Series:
    """One series' detector and alarm gate."""

    __slots__ = ("detector", "gate")

    def __init__(self, detector: Detector, gate: AlarmGate) -> None:
        self.detector = detector
        self.gate = gate


class Anomalies:
    """The anomaly domain of shard ``shard`` of ``shards`` (a ``Domain`` for ``DomainShard``)."""

    def __init__(self, settings: AnomalySettings, shard: int = 0, shards: int = 1) -> None:
        self.settings = settings
        self.shard = shard
        self.shards = shards
        self.windows = KpiWindows(settings.window_ms, settings.session_timeout_ms)
        self.baskets = BasketOutliers(z=settings.basket_z, warmup=settings.basket_warmup)
        self.prices = PriceOutliers(settings.price_deviation, warmup=settings.price_warmup,
                                    cooldown_ms=settings.outlier_cooldown_ms)
        self._next_start: dict[str, int] = {}  # group -> start of its next window to close
        self._series: dict[str, _Series] = {}
        self._pruned_at = -1
        #: Events too late for their window (it had closed), counted.
        self.late_for_window = 0

    def _owns(self, entity: str) -> bool:
        return self.shards == 1 or shard_of(entity, self.shards) == self.shard

    # -- events -----------------------------------------------------------------

    def on_event(self, event: Event, shard: DomainShard[Any]) -> list[Output]:
        window_ms = self.settings.window_ms
        start = self.windows.start_of(event.ts)
        for group in groups_of(event):
            if not self._owns(group):
                continue
            next_start = self._next_start.get(group)
            if next_start is None:
                self._next_start[group] = start
                shard.timers.schedule(_TIMER + group, start + window_ms - 1, start)
            elif start < next_start:
                self.late_for_window += 1
                continue
            self.windows.add(event, group)
        kind = event.type
        if kind not in ("order_placed", "sale", "add_to_cart", "product_view"):
            return []
        outputs: list[Output] = []
        channel = event.body.get("channel", "store")
        store = event.body.get("store_id", "online")
        if kind != "add_to_cart" and kind != "product_view" and self._owns(channel):
            outputs.extend(self._check_basket(event, channel, store))
        for sku, price in priced_skus(event):
            if self._owns(sku):
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
        self._next_start[group] = start + window_ms
        shard.timers.schedule(timer.key, start + 2 * window_ms - 1, start + window_ms)
        return self._score(window)

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

    def _detector(self, key: str, measure: str) -> _Series:
        series = self._series.get(key)
        if series is None:
            settings = self.settings
            params = settings.params
            params = DetectorParams(params.half_life, params.warmup, params.drift, measure in COUNT_MEASURES,
                                    0.0 if measure == "revenue" else params.rel_floor, params.seed)
            gate = AlarmGate(settings.threshold, settings.suppress_k, settings.clear_windows,
                             settings.max_episode_windows)
            series = self._series[key] = _Series(make_detector(settings.detector, params), gate)
        return series

    def _score(self, window: Window) -> list[Output]:
        signature = self._signature(window)
        if signature is None:
            return []
        outputs: list[Output] = []
        channel, _, store = window.group.partition(":")
        store = store or ("all" if channel == "store" else "online")
        for measure, observed in window.values().items():
            if measure == "conversion" and window.sessions < self.settings.min_sessions:
                continue  # a ratio of a few sessions is noise
            name = series_name(measure, window.group)
            state = self._detector(name + signature, measure)
            detector, gate = state.detector, state.gate
            score = detector.score_one(observed)
            expected = detector.expected
            was_in_alarm = gate.in_alarm
            alarm = gate.update(score) if detector.ready() else False
            if was_in_alarm and not gate.in_alarm:
                detector.reset()
            if not gate.in_alarm:
                detector.learn_one(observed)
            if alarm:
                record = self._alert(name, window.start, window.end, observed, expected, score,
                                     detector.direction(observed), window.end, window.last_event_id, channel, store)
                outputs.append(Output(TOPIC, name, record, window.end))
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
