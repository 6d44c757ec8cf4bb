"""The online churn classifier, validated progressively beside a calibrated recency prior.

One model for the whole customer base. ``learn_one`` is test-then-train: it
first scores the example with the model as it stands (and with the recency
prior), updates progressive ROC AUC and log loss, then learns. So the quality
figures are always out-of-sample, and a user can see whether the model beats
what recency alone already tells.

The recency prior (:class:`RecencyPrior`) is what the stage publishes until
the model has learned enough: P(churn) given the days since the last purchase
only, as the empirical churn rate of the labelled examples with about that
recency, smoothed towards a heavy-tailed prior curve that needs no data.

After that, which of the two is published is chosen online, on the stream's
own labels (:meth:`ChurnModel.prefers_model`): the one with the lower *recent*
progressive log loss, exponentially weighted with a half-life of
:data:`RECENT_HALF_LIFE` examples (follow-the-leader on a discounted loss, a
standard online model-selection rule). Both are scored on every example before
either learns it, so the comparison is out-of-sample and deterministic.

>>> model = ChurnModel("windowed_logistic", horizon_days=90)
>>> round(model.prior.proba(0.0), 2), round(model.prior.proba(90.0), 2), round(model.prior.proba(900.0), 2)
(0.5, 0.67, 0.92)
>>> for day in range(200):  # examples labelled over 200 days of event time
...     model.learn_one({"log_recency_days": 4.5, "log_frequency": 0.7}, True, ts=day * DAY_MS)
...     model.learn_one({"log_recency_days": 1.0, "log_frequency": 2.5}, False, ts=day * DAY_MS)
>>> model.predict_proba_one({"log_recency_days": 4.5, "log_frequency": 0.7}) > 0.8
True
>>> model.examples, model.version
(400, 'windowed_logistic@400')
>>> round(model.quality()["model"]["roc_auc"], 2), round(model.quality()["baseline"]["roc_auc"], 2)
(1.0, 1.0)
>>> model.prefers_model()  # its recent log loss is below the prior's
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from operators.churn.features import FEATURES
from operators.churn.refit import WindowedLogisticRegression, sigmoid
from operators.time.units import DAY_MS

MODELS = ("windowed_logistic", "logistic", "hoeffding_adaptive_tree")
#: The recency prior's only feature.
RECENCY = "log_recency_days"
#: Bins of the progressive ROC AUC over scores in [0, 1].
_AUC_BINS = 1000
#: Bins of the recency prior over log1p(recency in days): 0.1 wide, the last one open.
_PRIOR_BIN, _PRIOR_BINS = 0.1, 80
#: Weight of the prior curve in each bin, in labelled examples.
_PRIOR_WEIGHT = 20.0
#: Half-life, in labelled examples, of the recent progressive log loss that picks model or prior.
RECENT_HALF_LIFE = 1000
_RECENT_DECAY = 0.5 ** (1 / RECENT_HALF_LIFE)


def _make(kind: str, window_days: float) -> Any:
    # River's models are imported when chosen: river.linear_model and river.tree take over a
    # second to import (SciPy), which every start (and restart) on the shipped model would pay.
    if kind == "windowed_logistic":
        return WindowedLogisticRegression(FEATURES, window_ms=int(window_days * DAY_MS))
    if kind == "logistic":
        from river import linear_model

        return linear_model.LogisticRegression()  # behind a StandardScaler, see ChurnModel
    if kind == "hoeffding_adaptive_tree":
        from river import tree

        return tree.HoeffdingAdaptiveTreeClassifier(grace_period=100, seed=7)
    raise ValueError(f"unknown churn model {kind!r} (known: {', '.join(MODELS)})")


def _standard_scaler() -> Any:
    from river import preprocessing  # see _make

    return preprocessing.StandardScaler()


def _log_loss(y: bool, p: float) -> float:
    q = min(max(p, 1e-7), 1 - 1e-7)
    return -math.log(q if y else 1 - q)


class Progressive:
    """Progressive ROC AUC and log loss of a stream of (label, score).

    The AUC counts labels in 1,000 score bins (ties within a bin count one
    half): O(1) per update and exact to 0.001 in score, where River's
    ``ROCAUC`` updates a confusion matrix per threshold on each example.

    >>> quality = Progressive()
    >>> for y, p in [(True, 0.9), (False, 0.2), (True, 0.3), (False, 0.4)]:
    ...     quality.update(y, p)
    >>> quality.get()["roc_auc"]
    0.75
    """

    def __init__(self) -> None:
        self.positives = [0] * _AUC_BINS
        self.negatives = [0] * _AUC_BINS
        self.loss = 0.0
        self.count = 0

    def update(self, y: bool, p: float) -> None:
        b = min(int(p * _AUC_BINS), _AUC_BINS - 1)
        if y:
            self.positives[b] += 1
        else:
            self.negatives[b] += 1
        self.loss += _log_loss(y, p)
        self.count += 1

    def get(self) -> dict[str, float]:
        below = pairs = 0.0
        for pos, neg in zip(self.positives, self.negatives, strict=True):
            pairs += pos * (below + 0.5 * neg)
            below += neg
        total = sum(self.positives) * below
        return {"roc_auc": pairs / total if total else 0.0, "log_loss": self.loss / self.count if self.count else 0.0}


class RecencyPrior:
    """P(churn) from recency alone: calibrated on the labels, usable before the first.

    Before any label, the curve is ``(d + H) / (d + 2H)`` for ``d`` days
    since the last purchase and a horizon of ``H`` days: the chance that a
    silence of ``d`` days lasts ``H`` more when the time to the next purchase
    has a heavy tail (Lomax, shape 1, scale ``H``): 1/2 right after a
    purchase, 2/3 after one horizon of silence, rising towards 1.
    Each labelled example then counts in its bin of ``log1p(d)``, and a bin's
    probability is its churn rate with the curve weighted as 20 examples;
    between bin centres it is interpolated, so it still ranks every recency.
    """

    def __init__(self, horizon_days: float) -> None:
        self.horizon_days = horizon_days
        self.churned = [0] * _PRIOR_BINS
        self.seen = [0] * _PRIOR_BINS

    def _bin_proba(self, b: int) -> float:
        days = math.expm1((b + 0.5) * _PRIOR_BIN)
        prior = (days + self.horizon_days) / (days + 2 * self.horizon_days)
        return (self.churned[b] + _PRIOR_WEIGHT * prior) / (self.seen[b] + _PRIOR_WEIGHT)

    def proba_log(self, log_recency: float) -> float:
        """P(churn) at ``log1p(days since the last purchase)``."""
        position = min(max(log_recency / _PRIOR_BIN - 0.5, 0.0), _PRIOR_BINS - 1.0)
        low = int(position)
        if low >= _PRIOR_BINS - 1:
            return self._bin_proba(low)
        share = position - low
        return (1 - share) * self._bin_proba(low) + share * self._bin_proba(low + 1)

    def proba(self, recency_days: float) -> float:
        return self.proba_log(math.log1p(recency_days))

    def learn(self, log_recency: float, y: bool) -> None:
        b = min(int(log_recency / _PRIOR_BIN), _PRIOR_BINS - 1)
        self.seen[b] += 1
        self.churned[b] += y


class ChurnModel:
    """Churn probability from profile features (see ``operators.churn.features``).

    ``kind`` is ``"windowed_logistic"`` (the default: a logistic regression
    refitted on the labelled examples of the last ``window_days`` of event
    time, see :mod:`operators.churn.refit`), ``"logistic"`` (River's
    ``StandardScaler | LogisticRegression``, one SGD step per example) or
    ``"hoeffding_adaptive_tree"``; ``horizon_days`` shapes the recency prior.
    """

    def __init__(self, kind: str = "windowed_logistic", horizon_days: float = 90.0,
                 window_days: float = 90.0) -> None:  # fmt: skip
        self.kind = kind
        self._estimator = _make(kind, window_days)
        self._windowed = isinstance(self._estimator, WindowedLogisticRegression)
        # The logistic model is StandardScaler | LogisticRegression, kept apart so that a batch of
        # snapshots is scored at once (predict_proba_many) and an example is scaled once.
        self._scaler = _standard_scaler() if kind == "logistic" else None
        self.prior = RecencyPrior(horizon_days)
        self._quality = Progressive()
        self._baseline = Progressive()
        self.learned = {True: 0, False: 0}  # examples learned, by label
        # Exponentially weighted progressive log loss (sum over examples) of the model and of the prior.
        self.recent_loss = {"model": 0.0, "prior": 0.0}

    def predict_proba_one(self, x: dict[str, float]) -> float:
        """P(churn) for feature vector ``x`` by the model (an untrained tree: 0.5)."""
        if self._windowed:
            return float(self._estimator.predict_proba_one(x))
        if self._scaler is not None:
            x = self._scaler.transform_one(x)
        return float(self._estimator.predict_proba_one(x).get(True, 0.5))

    def predict_proba_many(self, X: np.ndarray, features: tuple[str, ...]) -> np.ndarray:
        """P(churn) for each row of ``X`` (columns: ``features``); as ``predict_proba_one`` does it."""
        if self._windowed and features == self._estimator.features:
            return np.asarray(self._estimator.predict_proba_many(X))
        if self._scaler is None:
            return np.array([self.predict_proba_one(dict(zip(features, row, strict=True))) for row in X.tolist()])
        scaler, lr = self._scaler, self._estimator
        means = np.array([scaler.means.get(f, 0.0) for f in features])
        stds = np.sqrt(np.array([scaler.vars.get(f, 0.0) for f in features]))
        scaled = np.divide(X - means, stds, out=np.zeros_like(X), where=stds > 0)
        weights = np.array([lr._weights.get(f, 0.0) for f in features])
        return sigmoid(scaled @ weights + lr.intercept)

    def learn_one(self, x: dict[str, float], y: bool, ts: int = 0) -> None:
        """Score ``x`` for the progressive metrics, then learn label ``y`` (True = churned) at event time ``ts``."""
        if self._windowed:  # scored by the last fit: a refit per example would cost the whole window each
            p_model = float(self._estimator.predict_proba_one(x, refit=False))
            self._estimator.learn_one(x, y, ts)
        else:
            if self._scaler is not None:  # the scaler learns no label: scaling first is still test-then-train
                self._scaler.learn_one(x)
                x_model = self._scaler.transform_one(x)
            else:
                x_model = x
            p_model = float(self._estimator.predict_proba_one(x_model).get(True, 0.5))
            self._estimator.learn_one(x_model, y)
        recency = x[RECENCY]
        p_prior = self.prior.proba_log(recency)
        self._quality.update(y, p_model)
        self._baseline.update(y, p_prior)
        recent = self.recent_loss
        recent["model"] = recent["model"] * _RECENT_DECAY + _log_loss(y, p_model)
        recent["prior"] = recent["prior"] * _RECENT_DECAY + _log_loss(y, p_prior)
        self.prior.learn(recency, y)
        self.learned[y] += 1

    def ready(self, warmup: int) -> bool:
        """Has the model learned at least ``warmup`` examples of each label?"""
        return min(self.learned.values()) >= warmup

    def prefers_model(self) -> bool:
        """Is the model's recent progressive log loss at most the recency prior's? (See the module doc.)"""
        return self.recent_loss["model"] <= self.recent_loss["prior"]

    @property
    def examples(self) -> int:
        """How many labelled examples the model has learned."""
        return self.learned[True] + self.learned[False]

    @property
    def version(self) -> str:
        """The model kind and how many examples it has learned."""
        return f"{self.kind}@{self.examples}"

    def quality(self) -> dict[str, dict[str, float]]:
        """Progressive ROC AUC and log loss of the model and of the recency prior (``baseline``)."""
        return {"model": self._quality.get(), "baseline": self._baseline.get()}
