"""The churn model's online choice between the logistic model and the recency prior."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Any

import pytest

import operators.churn.model
from operators.churn.model import ChurnModel
from operators.churn.scores import PRIOR, ChurnScores, ScoreSettings
from operators.customers.signals import Example, Snapshot
from operators.time.stream_items import Output, Signal

KINDS = ("windowed_logistic", "logistic")
HOUR_MS = 3_600_000
SETTINGS = ScoreSettings("logistic", score_change=0.02, at_risk=0.5, lapsing=0.8, horizon_days=90, warmup=50)
RFM = {"recency_days": 1.0, "frequency": 1, "monetary": 1.0}


def band(log_recency: float) -> bool:
    """Churned only in a middle band of recency: a prior per recency bin fits it, a linear model cannot."""
    return 2.0 < log_recency < 3.0


def rhythm(log_recency: float, log_frequency: float) -> bool:
    """Churned when silent long against the purchase count: the model sees it, recency alone half of it."""
    return log_recency - log_frequency > 1.5


def stream(label: str, n: int = 3000, seed: int = 3) -> list[tuple[dict[str, float], bool]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = {"log_recency_days": rng.uniform(0.0, 5.0), "log_frequency": rng.uniform(0.0, 3.0)}
        y = band(x["log_recency_days"]) if label == "band" else rhythm(x["log_recency_days"], x["log_frequency"])
        out.append((x, y))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_the_prior_is_preferred_when_its_recent_log_loss_is_lower(kind: str) -> None:
    model = ChurnModel(kind, horizon_days=90)
    for i, (x, y) in enumerate(stream("band")):
        model.learn_one(x, y, i * HOUR_MS)
    assert model.recent_loss["prior"] < model.recent_loss["model"] and not model.prefers_model()


@pytest.mark.parametrize("kind", KINDS)
def test_the_model_is_preferred_when_its_recent_log_loss_is_lower(kind: str) -> None:
    model = ChurnModel(kind, horizon_days=90)
    for i, (x, y) in enumerate(stream("rhythm")):
        model.learn_one(x, y, i * HOUR_MS)
    assert model.prefers_model()


@pytest.mark.parametrize("kind", KINDS)
def test_the_recent_loss_forgets_old_examples(kind: str) -> None:
    # A model that was worse long ago and better lately is preferred: the loss is recent, not cumulative.
    model = ChurnModel(kind, horizon_days=90)
    for i, (x, y) in enumerate(stream("band", 2000) + stream("rhythm", 6000, seed=4)):
        model.learn_one(x, y, i * HOUR_MS)
    assert model.prefers_model()
    assert model.quality()["model"]["log_loss"] > 0  # the cumulative figures are still exported


def published(label: str, kind: str = "logistic") -> list[dict[str, Any]]:
    stage = ChurnScores(replace(SETTINGS, model=kind))
    records = []
    for i, (x, y) in enumerate(stream(label)):
        ts = i * HOUR_MS
        stage.on_event(Signal("customer_snapshots", "model", ts, f"l{i}", Example("C1", x, y, i)), None)
        if i % 100 == 99:  # a customer asks for a score now and then
            snap = Snapshot(f"C{i}", {"log_recency_days": 2.5, "log_frequency": 1.0}, RFM, "bronze", f"e{i}")
            for out in stage.on_event(Signal("customer_snapshots", "model", ts, f"s{i}", snap), None):
                if isinstance(out, Output):
                    records.append(out.value)
    return records


@pytest.mark.parametrize("kind", KINDS)
def test_the_stage_publishes_whichever_is_better_and_says_which(kind: str) -> None:
    band_records = published("band", kind)
    assert {r["model"] for r in band_records[-5:]} == {PRIOR}  # after warmup, still the prior: it is better here
    assert all(r["churn_risk"] > 0.8 for r in band_records[-5:])  # and it knows the band (the model says about 0.2)
    rhythm_records = published("rhythm", kind)
    assert rhythm_records[0]["model"] == PRIOR and rhythm_records[-1]["model"] == kind


@pytest.mark.parametrize("kind", KINDS)
def test_the_choice_is_deterministic(kind: str) -> None:
    assert published("band", kind) == published("band", kind) and published("rhythm", kind) == published("rhythm", kind)


def test_a_half_life_of_examples() -> None:
    assert math.isclose(operators.churn.model._RECENT_DECAY ** operators.churn.model.RECENT_HALF_LIFE, 0.5)
