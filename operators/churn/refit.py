"""Logistic regression refitted on a sliding event-time window of recent labelled examples.

Churn labels mature one horizon after their snapshot, and what predicts
churn drifts with the season, so the most useful examples are the most
recent ones, and a single stochastic-gradient pass over the stream converges
slowly to them. This estimator keeps the labelled examples of the last
``window_ms`` of event time (at most ``capacity``, the oldest dropped first)
and, before the first prediction after new examples arrived, refits an
L2-regularised logistic regression on them exactly (Newton's method, warm
started from the previous fit) over features standardised on the window.

It follows River's ``learn_one`` / ``predict_proba_one`` protocol, with the
example's event time as a third argument of ``learn_one``, and adds a batch
``predict_proba_many``. The fit depends only on the examples and their order,
so every run gives the same coefficients.

>>> model = WindowedLogisticRegression(("recency", "frequency"), window_ms=1_000)
>>> for t in range(300):
...     model.learn_one({"recency": 4.0 + t % 3, "frequency": 0.5}, True, t)
...     model.learn_one({"recency": 1.0 + t % 3, "frequency": 2.0}, False, t)
>>> model.predict_proba_one({"recency": 5.0, "frequency": 0.5}) > 0.9
True
>>> model.examples  # in the window
600
>>> model.learn_one({"recency": 5.0, "frequency": 0.5}, True, 2_000)  # one window later: the rest age out
>>> model.examples
1
"""

from __future__ import annotations

import math

import numpy as np

#: Newton steps at most per refit (warm-started, two or three usually suffice).
_MAX_STEPS = 25
_TOLERANCE = 1e-6
#: Learning refits the model when event time has moved by this share of the window since the last refit.
REFIT_SHARE = 0.01


class WindowedLogisticRegression:
    """P(True) by a logistic regression on the window's examples (0.5 before any of each label)."""

    def __init__(self, features: tuple[str, ...], window_ms: int, capacity: int = 50_000, l2: float = 1e-3) -> None:
        self.features = features
        self.window_ms = window_ms
        self.capacity = capacity
        self.l2 = l2
        width = len(features)
        # The window, oldest first: event times, feature rows (``features`` order) and labels.
        self._ts = np.empty(0, dtype=np.int64)
        self._X = np.empty((0, width), dtype=np.float32)
        self._y = np.empty(0, dtype=bool)
        self._pending: list[tuple[int, list[float], bool]] = []  # learned since the window was last settled
        self._fitted_at: int | None = None  # event time of the last refit
        self._means = np.zeros(width)
        self._scales = np.ones(width)
        self._coef = np.zeros(width + 1)  # intercept first
        self._lists()

    @property
    def examples(self) -> int:
        """Labelled examples in the window."""
        self._settle()
        return len(self._y)

    def learn_one(self, x: dict[str, float], y: bool, ts: int) -> None:
        """Add example ``x`` with label ``y`` at event time ``ts``; examples older than the window leave.

        The model is refitted on what it held before ``x`` when the event time has moved on by
        :data:`REFIT_SHARE` of the window since the last refit, so a stream that is only learned
        (never asked to predict) still tracks it; a burst at one event time costs one refit.
        """
        if self._pending and (self._fitted_at is None or ts - self._fitted_at >= self.window_ms * REFIT_SHARE):
            self._refit()
        self._pending.append((ts, [x.get(f, 0.0) for f in self.features], y))

    def predict_proba_one(self, x: dict[str, float], refit: bool = True) -> float:
        """P(True) for ``x``; ``refit=False`` scores with the last fit (test-then-train without a refit per example)."""
        if self._pending and refit:
            self._refit()
        # Plain floats: for one row, numpy's per-call overhead is most of the cost.
        z = self._coef_list[0]
        for f, mean, scale, weight in zip(self.features, self._means_list, self._scales_list, self._coef_list[1:], strict=True):
            z += (x.get(f, 0.0) - mean) / scale * weight
        return 1.0 / (1.0 + math.exp(-min(max(z, -30.0), 30.0)))

    def predict_proba_many(self, X: np.ndarray, refit: bool = True) -> np.ndarray:
        """P(True) for each row of ``X`` (columns in ``features`` order)."""
        if self._pending and refit:
            self._refit()
        return sigmoid((X - self._means) / self._scales @ self._coef[1:] + self._coef[0])

    def _settle(self) -> None:
        """Move pending examples into the window and drop those past its age or capacity."""
        if self._pending:
            self._ts = np.concatenate([self._ts, np.array([t for t, _, _ in self._pending], dtype=np.int64)])
            self._X = np.concatenate([self._X, np.array([row for _, row, _ in self._pending], dtype=np.float32)])
            self._y = np.concatenate([self._y, np.array([label for _, _, label in self._pending], dtype=bool)])
            self._pending = []
        if len(self._ts):
            first = max(int(np.searchsorted(self._ts, self._ts[-1] - self.window_ms)), len(self._ts) - self.capacity)
            if first > 0:
                self._ts, self._X, self._y = self._ts[first:], self._X[first:], self._y[first:]

    def _refit(self) -> None:
        self._settle()
        self._fitted_at = int(self._ts[-1])
        positives = int(self._y.sum())
        if positives in (0, len(self._y)):  # one label only: no decision boundary yet
            self._coef = np.zeros(len(self.features) + 1)
            self._lists()
            return
        X = self._X.astype(np.float64)
        y = self._y.astype(np.float64)
        n = len(y)
        self._means = X.mean(axis=0)
        scales = X.std(axis=0)
        self._scales = np.where(scales > 0, scales, 1.0)
        design = np.c_[np.ones(n), (X - self._means) / self._scales]
        ridge = self.l2 * n * np.eye(design.shape[1])
        ridge[0, 0] = 1e-9 * n  # the intercept is barely shrunk: only enough to stay finite
        coef = self._coef if np.all(np.isfinite(self._coef)) else np.zeros(design.shape[1])
        loss, z = _penalised_loss(design, y, coef, ridge)
        for _ in range(_MAX_STEPS):
            p = sigmoid(z)
            gradient = design.T @ (p - y) + ridge @ coef
            hessian = (design * (p * (1 - p))[:, None]).T @ design + ridge
            step = np.linalg.solve(hessian, gradient)
            # Backtracking: a full Newton step can overshoot far from the optimum (a poor warm start).
            scale = 1.0
            while scale > 1e-4:
                trial = coef - scale * step
                trial_loss, trial_z = _penalised_loss(design, y, trial, ridge)
                if trial_loss <= loss:
                    break
                scale /= 2
            else:
                break
            coef, loss, z = trial, trial_loss, trial_z
            if np.abs(scale * step).max() < _TOLERANCE:
                break
        self._coef = coef
        self._lists()

    def _lists(self) -> None:
        self._means_list: list[float] = self._means.tolist()
        self._scales_list: list[float] = self._scales.tolist()
        self._coef_list: list[float] = self._coef.tolist()


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, saturated at |z| = 30 (as River's is)."""
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0)))


def _penalised_loss(
    design: np.ndarray, y: np.ndarray, coef: np.ndarray, ridge: np.ndarray
) -> tuple[float, np.ndarray]:
    """The penalised log loss at ``coef``, and the logits it computed (the next Newton step's)."""
    z = design @ coef
    # log(1 + e^z) - y z, computed stably
    return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * coef @ ridge @ coef), z
