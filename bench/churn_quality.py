"""Churn model quality: the model against a recency-only baseline, on simulated and real data.

Runs the flow's customer stages (identity, customers, churn: the same code
as the flow, in-process through ``flows.local.LocalFlow``, no Kafka) over

* simulated traffic with known ground truth: at a cutoff, every customer
  with a purchase is scored; the truth is whether the simulator had already
  made them leave (their latent churn time is before the cutoff);
* the UCI Online Retail replay: customers with a purchase before 2011-09-09,
  churned = no purchase from 2011-09-09 to 2011-12-09; scored at the cutoff.

For each model it prints the ROC AUC of the scores at the cutoff (model and
baseline: recency alone), the progressive (test-then-train) AUC and log loss
on the delayed labels, and the customer stages' throughput in events/s.

Usage: ``python bench/churn_quality.py [--customers 3000 --days 400] [--skip-uci]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from river import metrics  # noqa: E402

from channelflow.config import Config, load_config  # noqa: E402
from channelflow.simulator import SimulationSettings, simulate  # noqa: E402
from channelflow.uci import DEFAULT_CSV, events_from_csv  # noqa: E402
from flows.customer_wiring import customer_profiles, customer_specs  # noqa: E402
from flows.local import LocalFlow  # noqa: E402
from flows.topology import CHURN  # noqa: E402
from operators.churn.features import churn_features  # noqa: E402
from operators.churn.model import MODELS  # noqa: E402
from operators.contract.events import Event, event_of  # noqa: E402
from operators.customers.book import LOYALTY, is_scored  # noqa: E402
from operators.customers.profile import CustomerProfile  # noqa: E402
from operators.time.units import DAY_MS  # noqa: E402

UCI_CUTOFF = int(datetime(2011, 9, 9, tzinfo=timezone.utc).timestamp() * 1000)
UCI_END = int(datetime(2011, 12, 10, tzinfo=timezone.utc).timestamp() * 1000)


def contract_events(raw: Iterable[dict[str, Any]]) -> Iterator[Event]:
    return (event_of(message) for message in raw)


def with_model(config: Config, model: str) -> Config:
    return replace(config, churn=replace(config.churn, model=model))


def run_until(config: Config, events: list[Event], cutoff: int) -> tuple[LocalFlow, float]:
    """The customer stages fed every event before ``cutoff``; and their events/s."""
    flow = LocalFlow(customer_specs(config), config.flow.shards)
    before = [event for event in events if event.ts < cutoff]
    started = time.perf_counter()
    flow.run(before, watermark_every=500)
    flow.advance(cutoff)
    return flow, len(before) / (time.perf_counter() - started)


def profiles(flow: LocalFlow) -> dict[str, CustomerProfile]:
    """The scored customers with a purchase."""
    return {key: p for key, p in customer_profiles(flow).items() if is_scored(key) and p.last_purchase is not None}


def auc_at_cutoff(flow: LocalFlow, cutoff: int, churned: dict[str, bool]) -> tuple[float, float, int]:
    """ROC AUC of the model's scores and of recency at ``cutoff`` over the customers in ``churned``."""
    model = flow.domains(CHURN)[0].model
    model_auc, baseline_auc = metrics.ROCAUC(n_thresholds=200), metrics.ROCAUC(n_thresholds=200)
    scored = 0
    for key, profile in sorted(profiles(flow).items()):
        if key not in churned:
            continue
        features = churn_features(profile, cutoff)
        model_auc.update(churned[key], model.predict_proba_one(features))
        recency_days = (cutoff - profile.last_purchase) / DAY_MS
        baseline_auc.update(churned[key], recency_days / (recency_days + 30))  # monotone in recency
        scored += 1
    return float(model_auc.get()), float(baseline_auc.get()), scored


def report(name: str, model_kind: str, flow: LocalFlow, rate: float, cutoff_auc: tuple[float, float, int]) -> str:
    quality = flow.domains(CHURN)[0].model.quality()
    model_auc, baseline_auc, scored = cutoff_auc
    return (
        f"| {name} | {model_kind} | {scored} | {model_auc:.3f} | {baseline_auc:.3f} | "
        f"{quality['model']['roc_auc']:.3f} | {quality['baseline']['roc_auc']:.3f} | "
        f"{quality['model']['log_loss']:.3f} | {quality['baseline']['log_loss']:.3f} | "
        f"{flow.domains(CHURN)[0].model.examples} | {rate:,.0f} |"
    )


def simulated(config: Config, customers: int, days: int, seed: int, models: list[str]) -> list[str]:
    truth: list[dict[str, Any]] = []
    settings = SimulationSettings(seed=seed, customers=customers, days=days, anomalies=False)
    events = list(contract_events(simulate(settings, truth=truth.append)))
    cutoff = events[0].ts + (days - 60) * DAY_MS
    churn_at: dict[str, int] = {}  # by the key the engine knows: account id, or loyalty:<card>
    for record in truth:
        if record.get("record") == "customer":
            if record["customer_id"]:
                churn_at[record["customer_id"]] = record["churn_at"]
            if record["loyalty_id"]:
                churn_at[LOYALTY + record["loyalty_id"]] = record["churn_at"]
    rows = []
    for model_kind in models:
        flow, rate = run_until(with_model(config, model_kind), events, cutoff)
        labels = {key: churn_at[key] <= cutoff for key in profiles(flow)}
        rows.append(report(f"simulator ({customers} customers, {days} d)", model_kind, flow, rate,
                           auc_at_cutoff(flow, cutoff, labels)))  # fmt: skip
    return rows


def uci(config: Config, models: list[str]) -> list[str]:
    excluded: list[Any] = []
    events = sorted(contract_events(events_from_csv(DEFAULT_CSV, excluded=excluded)), key=lambda e: (e.ts, e.event_id))
    bought_after = {
        LOYALTY + e.body["loyalty_id"]
        for e in events
        if e.type == "sale" and e.body.get("loyalty_id") and UCI_CUTOFF <= e.ts < UCI_END
    }
    rows = []
    for model_kind in models:
        flow, rate = run_until(with_model(config, model_kind), events, UCI_CUTOFF)
        labels = {key: key not in bought_after for key in profiles(flow)}
        rows.append(report("UCI Online Retail, cutoff 2011-09-09", model_kind, flow, rate,
                           auc_at_cutoff(flow, UCI_CUTOFF, labels)))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--skip-uci", action="store_true")
    args = parser.parse_args(argv)
    config = load_config()
    models = args.models.split(",")
    print("| data | model | customers scored | AUC at cutoff: model | recency baseline "
          "| progressive AUC: model | baseline | log loss: model | baseline | labels learned | events/s |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for row in simulated(config, args.customers, args.days, args.seed, models):
        print(row, flush=True)
    if not args.skip_uci:
        for row in uci(config, models):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
