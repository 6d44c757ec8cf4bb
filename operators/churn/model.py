"""The online churn classifier, validated progressively beside a recency-only baseline.

One model for the whole customer base. ``learn_one`` is test-then-train: it
first scores the example with the model as it stands (and the baseline with
recency alone), updates progressive ROC AUC and log loss, then learns. So the
quality figures are always out-of-sample, and a user can see whether the model
beats what recency alone already tells.

>>> model = ChurnModel("logistic")
>>> for _ in range(200):
...     model.learn_one({"log_recency_days": 4.5, "log_frequency": 0.7}, True)
...     model.learn_one({"log_recency_days": 1.0, "log_frequency": 2.5}, False)
>>> model.predict_proba_one({"log_recency_days": 4.5, "log_frequency": 0.7}) > 0.8
True
>>> model.examples, model.version
(400, 'logistic@400')
>>> round(model.quality()["model"]["roc_auc"], 2)
1.0
"""

from __future__ import annotations

from typing import Any

from river import linear_model, metrics, preprocessing, tree

MODELS = ("logistic", "hoeffding_adaptive_tree")
#: The baseline's only feature.
RECENCY = "log_recency_days"
_AUC_THRESHOLDS = 50


def _make(kind: str) -> Any:
    if kind == "logistic":
        return preprocessing.StandardScaler() | linear_model.LogisticRegression()
    if kind == "hoeffding_adaptive_tree":
        return tree.HoeffdingAdaptiveTreeClassifier(grace_period=100, seed=7)
    raise ValueError(f"unknown churn model {kind!r} (known: {', '.join(MODELS)})")


class _Scored:
    """A classifier with its progressive ROC AUC and log loss."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        self.roc_auc = metrics.ROCAUC(n_thresholds=_AUC_THRESHOLDS)
        self.log_loss = metrics.LogLoss()

    def proba(self, x: dict[str, float]) -> float:
        # An untrained tree answers {}: no opinion, 0.5.
        return float(self.estimator.predict_proba_one(x).get(True, 0.5))

    def learn(self, x: dict[str, float], y: bool) -> None:
        p = self.proba(x)
        self.roc_auc.update(y, p)
        self.log_loss.update(y, p)
        self.estimator.learn_one(x, y)

    def quality(self) -> dict[str, float]:
        return {"roc_auc": float(self.roc_auc.get()), "log_loss": float(self.log_loss.get())}


class ChurnModel:
    """Churn probability from profile features (see ``operators.churn.features``).

    ``kind`` is ``"logistic"`` (``StandardScaler | LogisticRegression``, the
    default) or ``"hoeffding_adaptive_tree"``.
    """

    def __init__(self, kind: str = "logistic") -> None:
        self.kind = kind
        self._model = _Scored(_make(kind))
        self._baseline = _Scored(_make("logistic"))
        self.learned = {True: 0, False: 0}  # examples learned, by label

    def predict_proba_one(self, x: dict[str, float]) -> float:
        """P(churn) for feature vector ``x``."""
        return self._model.proba(x)

    def learn_one(self, x: dict[str, float], y: bool) -> None:
        """Score ``x`` for the progressive metrics, then learn label ``y`` (True = churned)."""
        self._model.learn(x, y)
        self._baseline.learn({RECENCY: x[RECENCY]}, y)
        self.learned[y] += 1

    @property
    def examples(self) -> int:
        """How many labelled examples the model has learned."""
        return self.learned[True] + self.learned[False]

    @property
    def version(self) -> str:
        """The model kind and how many examples it has learned."""
        return f"{self.kind}@{self.examples}"

    def quality(self) -> dict[str, dict[str, float]]:
        """Progressive ROC AUC and log loss of the model and of the recency baseline."""
        return {"model": self._model.quality(), "baseline": self._baseline.quality()}
