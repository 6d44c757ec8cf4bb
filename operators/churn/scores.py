"""The churn stage: one model for every customer, fed and read in event-time order.

A single shard (the flow keys it by one key, so one worker owns it) holds the
:class:`ChurnModel`. Both customer stages send it snapshots to score and
matured examples to learn; it is an *ordered* stage, so it learns and scores
in the same event-time order in every run, with one process or several, and
its state (the model, its progressive metrics, the last published scores) is
snapshotted by Bytewax recovery like any other.

A score is published to ``customer-scores`` when it is the customer's first,
moved by at least ``score_change``, or changed segment. Erasure drops the
customer's last score and confirms on ``customer-scores`` with ``erased: true``.

>>> from operators.customers.signals import Snapshot
>>> from operators.time.stream_items import Signal
>>> stage = ChurnScores(ScoreSettings("logistic", score_change=0.05, at_risk=0.5, lapsing=0.8))
>>> rfm = {"recency_days": 3.0, "frequency": 2, "monetary": 40.0}
>>> ask = Snapshot("C1", {"log_recency_days": 1.4}, rfm, "bronze", "e9")
>>> [o.value["churn_risk"] for o in stage.on_event(Signal("customer_snapshots", "model", 5, "a", ask), None) if isinstance(o, Output)]
[0.5]
>>> [o for o in stage.on_event(Signal("customer_snapshots", "model", 6, "b", ask), None) if isinstance(o, Output)]  # unchanged: not published again
[]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from operators.churn.model import ChurnModel
from operators.contract.dead_letter import iso_ms
from operators.customers.signals import Erase, Example, Retired, Snapshot
from operators.time.shard import DomainShard
from operators.time.stream_items import Output, Signal
from operators.time.timers import Timer

TOPIC = "customer_scores"


@dataclass(frozen=True, slots=True)
class ChurnScore:
    """A churn score (0..1) of one customer at event time ``ts``."""

    customer_key: str
    ts: int
    churn_risk: float
    cause_event_id: str


#: The stream of every score (:class:`ChurnScore`), keyed by customer.
CHURN_SCORES = "churn_scores"


@dataclass(frozen=True)
class ScoreSettings:
    """``[churn]`` settings the churn stage uses."""

    model: str
    score_change: float
    at_risk: float
    lapsing: float


class ChurnScores:
    """The churn model's stage: scores out, labelled examples in."""

    def __init__(self, settings: ScoreSettings) -> None:
        self.settings = settings
        self.model = ChurnModel(settings.model)
        self.published: dict[str, tuple[float, str]] = {}  # customer key -> (score, segment)

    def segment(self, risk: float) -> str:
        if risk >= self.settings.lapsing:
            return "lapsing"
        return "at_risk" if risk >= self.settings.at_risk else "active"

    def on_event(self, signal: Signal, shard: DomainShard[Any] | None) -> list[Output | Signal]:
        body = signal.body
        if isinstance(body, Example):
            self.model.learn_one(body.features, body.churned)
            return []
        if isinstance(body, Snapshot):
            return self._score(body, signal.ts, signal.order)
        if isinstance(body, Retired):
            self.published.pop(body.alias, None)
            return []
        if isinstance(body, Erase):
            self.published.pop(body.customer_id, None)
            record = {"customer_id": body.customer_id, "erased": True, "ts": iso_ms(signal.ts),
                      "cause_event_id": body.cause_event_id}  # fmt: skip
            return [Output(TOPIC, body.customer_id, record, signal.ts)]
        raise TypeError(f"churn stage got {body!r}")

    def _score(self, snapshot: Snapshot, ts: int, order: str) -> list[Output | Signal]:
        key = snapshot.customer_key
        risk = round(self.model.predict_proba_one(snapshot.features), 4)
        segment = self.segment(risk)
        out: list[Output | Signal] = []
        # Every score is published; customer-scores gets only material moves.
        out.append(Signal(CHURN_SCORES, key, ts, f"{order}:risk", ChurnScore(key, ts, risk, snapshot.cause_event_id)))
        last = self.published.get(key)
        if last is not None and abs(risk - last[0]) < self.settings.score_change and segment == last[1]:
            return out
        self.published[key] = (risk, segment)
        record = {
            "customer_id": key,
            "churn_risk": risk,
            "segment": segment,
            **snapshot.rfm,
            "tier": snapshot.tier,
            "model_version": self.model.version,
            "ts": iso_ms(ts),
            "cause_event_id": snapshot.cause_event_id,
        }
        out.append(Output(TOPIC, key, record, ts))
        return out

    def on_timer(self, timer: Timer[Any], shard: DomainShard[Any]) -> list[Output]:
        return []

    def on_watermark(self, shard: DomainShard[Any]) -> list[Output]:
        return []
