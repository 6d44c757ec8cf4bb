"""The churn stage: one model for every customer, fed and read in event-time order.

A single shard (the flow keys it by one key, so one worker owns it) holds the
:class:`ChurnModel`. Both customer stages send it snapshots to score and
matured examples to learn; it is an *ordered* stage, so it learns and scores
in the same event-time order in every run, with one process or several, and
its state (the model, its progressive metrics, the last published scores) is
snapshotted by Bytewax recovery like any other.

Until the model has learned ``warmup`` examples of each label, the score is
the calibrated recency prior (``model: "recency_prior"`` in the record; see
:class:`~operators.churn.model.RecencyPrior`), so a customer has a useful score
from the first purchase; then it is the model's (``model: "logistic"``) while
the model's recent progressive log loss is at most the prior's, the prior's
otherwise (:meth:`~operators.churn.model.ChurnModel.prefers_model`).

Every score goes to the ``churn_scores`` stream. A score is written to
``customer-scores`` when it is the customer's first, moved by at least
``score_change`` since the customer's last record, changed segment or
``model``, or when the last record is ``republish`` old (event time) or
older: a consumer holding the latest record per customer never holds one
more than ``republish`` plus a tick old, and every tick does not rewrite every
customer. Erasure drops the customer's last record and confirms on
``customer-scores`` with ``erased: true``.

>>> from operators.customers.signals import Snapshot
>>> from operators.time.stream_items import Signal
>>> settings = ScoreSettings("logistic", score_change=0.02, at_risk=0.5, lapsing=0.8, horizon_days=90,
...                          warmup=100, republish_ms=28)
>>> stage = ChurnScores(settings)
>>> rfm = {"recency_days": 3.0, "frequency": 2, "monetary": 40.0}
>>> ask = Snapshot("C1", {"log_recency_days": 1.4}, rfm, "bronze", "e9")
>>> [(o.value["churn_risk"], o.value["model"]) for o in stage.on_event(Signal("customer_snapshots", "model", 5, "a", ask), None)
...  if isinstance(o, Output)]
[(0.5084, 'recency_prior')]
>>> [o for o in stage.on_event(Signal("customer_snapshots", "model", 6, "b", ask), None) if isinstance(o, Output)]  # unchanged: not written again
[]
>>> [o.value["ts"] for o in stage.on_event(Signal("customer_snapshots", "model", 33, "c", ask), None) if isinstance(o, Output)]  # but it aged
['1970-01-01T00:00:00.033Z']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from operators.churn.features import FEATURES, WIDTH
from operators.churn.model import RECENCY, ChurnModel
from operators.contract.dead_letter import iso_ms
from operators.customers.signals import Erase, Example, Retired, Snapshot, TickSnapshots
from operators.records import fast_init
from operators.state.pickling import pickled_as_call
from operators.state.tracked import TrackedDict
from operators.time.shard import DomainShard, take_settings
from operators.time.stream_items import Output, Signal
from operators.time.timers import Timer

TOPIC = "customer_scores"


@pickled_as_call
@fast_init
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
    horizon_days: float = 90.0
    warmup: int = 500
    republish_ms: int = 28 * 86_400_000
    window_days: float = 90.0


#: The ``model`` field of a score from the recency prior.
PRIOR = "recency_prior"


class ChurnScores:
    """The churn model's stage: scores out, labelled examples in."""

    #: Settings the learnt model was built with: kept on a restore (a new model starts from nothing).
    KEPT_ON_RESTORE = ("model", "horizon_days", "window_days")

    def __init__(self, settings: ScoreSettings) -> None:
        self.settings = settings
        self.model = ChurnModel(settings.model, settings.horizon_days, settings.window_days)
        # customer key -> (score, segment, from the model (not the prior), event time) of its last record
        self.published: TrackedDict[str, tuple[float, str, bool, int]] = TrackedDict()

    def reconfigure(self, fresh: ChurnScores) -> tuple[str, ...]:
        """Restored from a snapshot: publish by today's thresholds (``fresh``'s settings), keeping
        the learnt model and the settings it was built with; return those that differ (kept)."""
        self.settings, kept = take_settings(self.settings, fresh.settings, self.KEPT_ON_RESTORE)
        return kept

    def segment(self, risk: float) -> str:
        if risk >= self.settings.lapsing:
            return "lapsing"
        return "at_risk" if risk >= self.settings.at_risk else "active"

    def on_event(self, signal: Signal, shard: DomainShard[Any] | None) -> list[Output | Signal]:
        body = signal.body
        if isinstance(body, Example):
            self.model.learn_one(body.features, body.churned, signal.ts)
            return []
        if isinstance(body, TickSnapshots):
            return self._score_tick(body, signal.ts, signal.order)
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

    def uses_model(self) -> bool:
        """Are scores the model's (not the recency prior's)? After warmup, while its recent log loss is lower."""
        return self.model.ready(self.settings.warmup) and self.model.prefers_model()

    def _score(self, snapshot: Snapshot, ts: int, order: str) -> list[Output | Signal]:
        if self.uses_model():
            risk, learned = self.model.predict_proba_one(snapshot.features), True
        else:
            risk, learned = self.model.prior.proba_log(snapshot.features[RECENCY]), False
        out: list[Output | Signal] = []
        self._publish(out, snapshot.customer_key, risk, learned, ts, order, snapshot.rfm, snapshot.tier,
                      snapshot.cause_event_id)  # fmt: skip
        return out

    def _score_tick(self, batch: TickSnapshots, ts: int, order: str) -> list[Output | Signal]:
        X = np.frombuffer(batch.packed, dtype=np.float32).reshape(len(batch.keys), WIDTH).astype(np.float64)
        learned = self.uses_model()
        if learned:
            risks = self.model.predict_proba_many(X, FEATURES).tolist()
        else:
            risks = [self.model.prior.proba_log(r) for r in X[:, FEATURES.index(RECENCY)].tolist()]
        out: list[Output | Signal] = []
        stamp = self._stamp(ts, learned)  # the same for every customer of the tick
        for i, key in enumerate(batch.keys):
            rfm = {"recency_days": batch.recency_days[i], "frequency": batch.frequency[i], "monetary": batch.monetary[i]}
            self._publish(out, key, risks[i], learned, ts, f"{order}:{key}", rfm, batch.tiers[i], batch.causes[i], stamp)
        return out

    def _stamp(self, ts: int, learned: bool) -> tuple[str, str, str]:
        """The record fields that depend only on the time and the model: model, model_version, ts."""
        return (self.model.kind if learned else PRIOR), self.model.version, iso_ms(ts)

    def _publish(self, out: list[Output | Signal], key: str, p: float, learned: bool, ts: int, order: str,
                 rfm: dict[str, float | int], tier: str, cause: str,
                 stamp: tuple[str, str, str] | None = None) -> None:  # fmt: skip
        settings = self.settings
        risk = round(p, 4)
        segment = self.segment(risk)
        # Every score is published; customer-scores gets material moves and aged records.
        out.append(Signal(CHURN_SCORES, key, ts, f"{order}:risk", ChurnScore(key, ts, risk, cause)))
        last = self.published.get(key)
        if (
            last is not None
            and abs(risk - last[0]) < settings.score_change
            and segment == last[1]
            and learned == last[2]
            and ts - last[3] < settings.republish_ms
        ):
            return
        self.published[key] = (risk, segment, learned, ts)
        model, version, iso_ts = stamp or self._stamp(ts, learned)
        record = {
            "customer_id": key,
            "churn_risk": risk,
            "segment": segment,
            **rfm,
            "tier": tier,
            "model": model,
            "model_version": version,
            "ts": iso_ts,
            "cause_event_id": cause,
        }
        out.append(Output(TOPIC, key, record, ts))

    def on_timer(self, timer: Timer[Any], shard: DomainShard[Any]) -> list[Output]:
        return []

    def on_watermark(self, shard: DomainShard[Any]) -> list[Output]:
        return []
