"""The windowed logistic regression: an exact fit of its window, which follows drift."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.churn.refit import WindowedLogisticRegression

FEATURES = ("a", "b", "c")
DAY_MS = 86_400_000


def gradient_at_fit(model: WindowedLogisticRegression) -> np.ndarray:
    """The penalised log loss's gradient at the fitted coefficients, over the window (0 at the optimum)."""
    X = (model._X.astype(np.float64) - model._means) / model._scales
    design = np.c_[np.ones(len(X)), X]
    p = 1 / (1 + np.exp(-(design @ model._coef)))
    ridge = model.l2 * len(X) * np.eye(design.shape[1])
    ridge[0, 0] = 1e-9 * len(X)
    return design.T @ (p - model._y) + ridge @ model._coef


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.floats(-5, 5), st.floats(-5, 5), st.floats(0, 3), st.booleans()), min_size=2, max_size=300
    ),
    batches=st.integers(1, 5),
)
def test_each_refit_is_the_optimum_of_its_window(rows: list[tuple[float, float, float, bool]], batches: int) -> None:
    model = WindowedLogisticRegression(FEATURES, window_ms=10 * DAY_MS)
    for i, (a, b, c, y) in enumerate(rows):
        model.learn_one({"a": a, "b": b, "c": c}, y, ts=i * batches * DAY_MS // len(rows))
    model.predict_proba_one({"a": 0.0, "b": 0.0, "c": 0.0})
    labels = model._y
    if labels.all() or not labels.any():
        assert np.all(model._coef == 0)  # one label only: no boundary, P = 1/2
        return
    # An L2-penalised logistic loss is strictly convex: a zero gradient is its unique optimum.
    assert np.abs(gradient_at_fit(model)).max() < 1e-4 * len(labels)


def test_old_examples_leave_the_window_and_the_fit_follows_the_drift() -> None:
    rng = random.Random(5)
    model = WindowedLogisticRegression(FEATURES, window_ms=30 * DAY_MS)
    for day in range(120):  # a rises with churn for 60 days, then falls with it
        sign = 1 if day < 60 else -1
        for _ in range(20):
            a = rng.gauss(0, 1)
            model.learn_one({"a": a, "b": rng.gauss(0, 1), "c": 0.0}, sign * a + rng.gauss(0, 0.5) > 0, day * DAY_MS)
    assert model.predict_proba_one({"a": 2.0, "b": 0.0, "c": 0.0}) < 0.1  # the last 30 days' relation
    assert model.examples == 31 * 20  # days 89..119: event times within 30 days of the latest


def test_capacity_keeps_the_latest_examples() -> None:
    model = WindowedLogisticRegression(FEATURES, window_ms=365 * DAY_MS, capacity=100)
    for i in range(250):
        model.learn_one({"a": float(i), "b": 0.0, "c": 0.0}, i % 2 == 0, i * 1000)
    assert model.examples == 100 and model._X[0, 0] == 150.0


def test_batch_and_one_at_a_time_scores_agree() -> None:
    rng = random.Random(2)
    model = WindowedLogisticRegression(FEATURES, window_ms=DAY_MS)
    for i in range(500):
        a = rng.gauss(0, 1)
        model.learn_one({"a": a, "b": rng.gauss(0, 1), "c": 1.0}, a > 0.3, i)
    X = np.array([[rng.gauss(0, 1), rng.gauss(0, 1), 1.0] for _ in range(20)])
    many = model.predict_proba_many(X)
    one = [model.predict_proba_one(dict(zip(FEATURES, row, strict=True))) for row in X.tolist()]
    assert np.allclose(many, one, atol=1e-12)
