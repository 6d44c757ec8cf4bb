"""Churn quality as a consumer sees it: the latest published score per customer, against baselines.

Runs the flow's customer stages (identity, customers, churn: the same code as
the flow, in-process through ``flows.local.LocalFlow``, no Kafka) over a data
set up to a cutoff and keeps what they wrote to ``customer-scores``. A
consumer of that topic holds each customer's latest record, so that record's
``churn_risk`` is what is judged: nothing is re-scored here.

Every customer with a purchase before the cutoff is judged, against

* UCI Online Retail (real): churned = no purchase in the horizon (92 days)
  from the cutoff (2011-09-09, and a second cutoff, 2011-06-09);
* the simulator: churned = the simulator's latent churn time is before the
  cutoff (60 days before the end of the run): the customer has left,
  whether or not it shows yet.

Beside the published scores, computed in the same run from the same
purchase histories (first and last purchase, number and value of purchases
at the cutoff, as the engine's profiles hold them):

* recency: days since the last purchase (more = more likely churned);
* frequency: number of purchases (fewer = more likely churned);
* RFM quintile: the sum of recency, frequency and monetary quintile scores
  (1..5 each, 5 = recent / frequent / big spender);
* BG/NBD (Fader, Hardie and Lee 2005), fitted by maximum likelihood on the
  same histories at the cutoff: P(no purchase in the horizon | history).
  :func:`fit_bgnbd` is checked against the parameters published for the
  CDNOW sample (``--check-bgnbd``) and by a test that recovers known
  parameters from simulated histories.

It prints ROC AUC with a paired bootstrap 95% interval of the difference to
recency (customers resampled with replacement), and log loss of the
published scores against recency's calibrated probabilities (a logistic
regression on log recency fitted to the very labels it is judged on, by
2-fold cross-fitting: a strict baseline, since the model never sees them).
Also: how many published records were the recency prior (``model`` field),
records per customer per tick (output volume), the customer stages'
events/s, and the pickled state per customer after a 120-day run.

Usage: ``python bench/churn_quality.py [--customers 3000 --days 400] [--skip-uci] [--skip-sim]``.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import channelflow  # noqa: E402, F401  # before numpy: single-threaded BLAS, as the engine runs

# isort: split
import numpy as np  # noqa: E402
from scipy import optimize, special  # type: ignore[import-untyped]  # noqa: E402

from channelflow.config import Config, load_config  # noqa: E402
from channelflow.simulator import SimulationSettings, simulate  # noqa: E402
from channelflow.uci import DEFAULT_CSV, events_from_csv  # noqa: E402
from flows.customer_wiring import customer_profiles, customer_specs  # noqa: E402
from flows.local import LocalFlow  # noqa: E402
from flows.topology import CHURN, CUSTOMERS, IDENTITY  # noqa: E402
from operators.churn.model import MODELS  # noqa: E402
from operators.contract.events import Event, event_of  # noqa: E402
from operators.customers.book import LOYALTY, is_scored  # noqa: E402
from operators.customers.profile import CustomerProfile  # noqa: E402
from operators.time.units import DAY_MS  # noqa: E402


def _utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


UCI_CUTOFFS = ("2011-09-09", "2011-06-09")
UCI_HORIZON_DAYS = 92  # 2011-09-09 .. 2011-12-09 inclusive
SIM_TAIL_DAYS = 60
BOOTSTRAP = 1000


# -- scoring rules ---------------------------------------------------------------------


def auc(scores: np.ndarray, churned: np.ndarray, weights: np.ndarray | None = None) -> float:
    """ROC AUC (ties count one half), optionally with integer case weights (a bootstrap resample)."""
    w = np.ones(len(scores)) if weights is None else weights
    order = np.argsort(scores, kind="stable")
    s, y, w = scores[order], churned[order], w[order]
    pos, neg = w * y, w * (1 - y)
    # Group ties: for each tie group, negatives strictly below plus half the negatives in the group.
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    neg_groups = np.add.reduceat(neg, starts)
    pos_groups = np.add.reduceat(pos, starts)
    below = np.cumsum(neg_groups) - neg_groups
    total = pos_groups.sum() * neg_groups.sum()
    return float((pos_groups * (below + 0.5 * neg_groups)).sum() / total) if total else float("nan")


def bootstrap_diff(a: np.ndarray, b: np.ndarray, churned: np.ndarray, seed: int = 1) -> tuple[float, float]:
    """95% paired bootstrap interval of AUC(a) - AUC(b): customers resampled with replacement."""
    rng = np.random.default_rng(seed)
    n = len(churned)
    diffs = []
    for _ in range(BOOTSTRAP):
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        diffs.append(auc(a, churned, w) - auc(b, churned, w))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def log_loss(p: np.ndarray, churned: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(churned * np.log(p) + (1 - churned) * np.log(1 - p)))


def fit_logistic(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Intercept and slope of a one-feature logistic regression (Newton, tiny ridge)."""
    beta = np.zeros(2)
    design = np.c_[np.ones(len(x)), x]
    for _ in range(50):
        p = 1 / (1 + np.exp(-design @ beta))
        grad = design.T @ (p - y) + 1e-6 * beta
        hess = (design * (p * (1 - p))[:, None]).T @ design + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(beta[0]), float(beta[1])


def calibrated_recency(recency_days: np.ndarray, churned: np.ndarray) -> np.ndarray:
    """P(churn) from log recency, fitted on the judged labels by 2-fold cross-fitting."""
    x = np.log1p(recency_days)
    fold = np.arange(len(x)) % 2
    p = np.empty(len(x))
    for k in (0, 1):
        b0, b1 = fit_logistic(x[fold != k], churned[fold != k])
        p[fold == k] = 1 / (1 + np.exp(-(b0 + b1 * x[fold == k])))
    return p


def quintile(values: np.ndarray) -> np.ndarray:
    """1..5 by rank (ties share the lower score)."""
    ranks = np.searchsorted(np.sort(values), values, side="left")
    return 1 + (5 * ranks) // len(values)


# -- BG/NBD ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BgNbd:
    """BG/NBD parameters: purchase rates ~ Gamma(r, alpha), drop-out after a purchase ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def _terms(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        common = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) - special.betaln(a, b)
        alive = common + special.betaln(a, b + x) - (r + x) * np.log(alpha + T)
        with np.errstate(divide="ignore", invalid="ignore"):
            dead = np.where(
                x > 0,
                common + special.betaln(a + 1, np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x),
                -np.inf,
            )
        return alive, dead

    def log_likelihood(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        alive, dead = self._terms(x, t_x, T)
        return np.logaddexp(alive, dead)

    def p_no_purchase(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, t: float) -> np.ndarray:
        """P(no purchase in (T, T + t] | x repeat purchases, the last at t_x, observed for T)."""
        alive_then, dead = self._terms(x, t_x, T + t)
        return np.exp(np.logaddexp(alive_then, dead) - self.log_likelihood(x, t_x, T))

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        alive, dead = self._terms(x, t_x, T)
        return np.exp(alive - np.logaddexp(alive, dead))


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[BgNbd, float]:
    """Maximum-likelihood BG/NBD (log-parameters, Nelder-Mead then L-BFGS-B); and the log-likelihood."""

    def nll(log_params: np.ndarray) -> float:
        value = -BgNbd(*np.exp(log_params)).log_likelihood(x, t_x, T).sum()
        return float(value) if np.isfinite(value) else 1e300

    start = np.log([0.5, max(float(np.mean(T)), 1.0) / 4, 1.0, 2.0])
    first = optimize.minimize(nll, start, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-8})
    best = optimize.minimize(nll, first.x, method="L-BFGS-B")
    found = best if best.fun <= first.fun else first
    return BgNbd(*np.exp(found.x)), -float(found.fun)


# -- running the stages ----------------------------------------------------------------


def contract_events(raw: Iterable[dict[str, Any]]) -> Iterator[Event]:
    return (event_of(message) for message in raw)


def with_model(config: Config, model: str) -> Config:
    return replace(config, churn=replace(config.churn, model=model))


def run_until(config: Config, events: list[Event], cutoff: int) -> tuple[LocalFlow, float]:
    """The customer stages fed every event before ``cutoff``, watermark at ``cutoff``; their events/s."""
    flow = LocalFlow(customer_specs(config), config.flow.shards)
    before = [event for event in events if event.ts < cutoff]
    started = time.process_time()
    flow.run(before, watermark_every=500)
    flow.advance(cutoff)
    return flow, len(before) / (time.process_time() - started)


def latest_published(flow: LocalFlow, cutoff: int) -> dict[str, dict[str, Any]]:
    """What a consumer of customer-scores holds at ``cutoff``: each customer's latest record."""
    latest: dict[str, dict[str, Any]] = {}
    for output in flow.outputs:
        if output.topic != "customer_scores" or (output.ts_ms is not None and output.ts_ms >= cutoff):
            continue
        if output.value.get("erased"):
            latest.pop(output.key, None)
        else:
            latest[output.key] = output.value
    return latest


def buyers(flow: LocalFlow) -> dict[str, CustomerProfile]:
    """The scored customers with a purchase, as the engine's profiles hold them."""
    found = customer_profiles(flow).items()
    return {key: p for key, p in sorted(found) if is_scored(key) and p.last_purchase is not None}


@dataclass
class Judged:
    name: str
    customers: int
    churn_rate: float
    rows: list[tuple[str, float, tuple[float, float] | None, float | None]]  # name, AUC, CI vs recency, log loss
    prior_share: float
    records_per_customer_tick: float
    events_per_s: float
    missing: int


def judge(name: str, flow: LocalFlow, rate: float, cutoff: int, churned_of: dict[str, bool], horizon_days: float,
          ticks: int) -> Judged:  # fmt: skip
    profiles = {key: p for key, p in buyers(flow).items() if key in churned_of}
    keys = list(profiles)
    churned = np.array([churned_of[k] for k in keys], dtype=float)
    published = latest_published(flow, cutoff)
    missing = sum(1 for k in keys if k not in published)
    model = np.array([published[k]["churn_risk"] if k in published else 0.5 for k in keys])
    prior = sum(1 for k in keys if published.get(k, {}).get("model", "").endswith("prior"))
    first = np.array([profiles[k].first_purchase for k in keys], dtype=float)
    last = np.array([profiles[k].last_purchase for k in keys], dtype=float)
    orders = np.array([profiles[k].orders for k in keys], dtype=float)
    monetary = np.array([profiles[k].lifetime_value_millis for k in keys], dtype=float)
    recency = (cutoff - last) / DAY_MS
    rfm = quintile(-recency) + quintile(orders) + quintile(monetary)
    x, t_x, T = orders - 1, (last - first) / DAY_MS / 7, (cutoff - first) / DAY_MS / 7  # weeks
    params, _ = fit_bgnbd(x, t_x, T)
    bgnbd = params.p_no_purchase(x, t_x, T, horizon_days / 7)
    baseline = calibrated_recency(recency, churned)
    rows: list[tuple[str, float, tuple[float, float] | None, float | None]] = [
        ("published score", auc(model, churned), bootstrap_diff(model, recency, churned), log_loss(model, churned)),
        ("recency (calibrated: log loss)", auc(recency, churned), None, log_loss(baseline, churned)),
        ("frequency", auc(-orders, churned), bootstrap_diff(-orders, recency, churned), None),
        ("RFM quintile sum", auc(-rfm.astype(float), churned), bootstrap_diff(-rfm.astype(float), recency, churned), None),
        (f"BG/NBD (r={params.r:.2f} alpha={params.alpha:.1f} a={params.a:.2f} b={params.b:.2f})",
         auc(bgnbd, churned), bootstrap_diff(bgnbd, recency, churned), log_loss(bgnbd, churned)),
    ]  # fmt: skip
    records = sum(1 for o in flow.outputs if o.topic == "customer_scores" and not o.value.get("erased"))
    scored = len({o.key for o in flow.outputs if o.topic == "customer_scores"})
    return Judged(name, len(keys), float(churned.mean()), rows, prior / max(len(keys), 1),
                  records / max(scored, 1) / max(ticks, 1), rate, missing)  # fmt: skip


def show(judged: Judged) -> str:
    lines = [
        f"\n### {judged.name}: {judged.customers} customers, {judged.churn_rate:.0%} churned; "
        f"{judged.events_per_s:,.0f} events/s; {judged.records_per_customer_tick:.2f} customer-scores records "
        f"per customer per tick; prior scores among those judged: {judged.prior_share:.1%}"
        + (f"; {judged.missing} without a published score" if judged.missing else ""),
        "",
        "| scores | ROC AUC | vs recency (95% bootstrap) | log loss |",
        "|---|--:|--:|--:|",
    ]
    for name, value, ci, loss in judged.rows:
        interval = "" if ci is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"
        lines.append(f"| {name} | {value:.3f} | {interval} | {'' if loss is None else f'{loss:.3f}'} |")
    return "\n".join(lines)


def ticks_between(start: int, end: int, tick_ms: int) -> int:
    return max(1, end // tick_ms - start // tick_ms)


def simulated(config: Config, customers: int, days: int, seed: int, model: str) -> Judged:
    truth: list[dict[str, Any]] = []
    settings = SimulationSettings(seed=seed, customers=customers, days=days, anomalies=False)
    events = list(contract_events(simulate(settings, truth=truth.append)))
    cutoff = events[0].ts + (days - SIM_TAIL_DAYS) * DAY_MS
    churn_at: dict[str, int] = {}  # by the key the engine knows: account id, or loyalty:<card>
    for record in truth:
        if record.get("record") == "customer":
            if record["customer_id"]:
                churn_at[record["customer_id"]] = record["churn_at"]
            if record["loyalty_id"]:
                churn_at[LOYALTY + record["loyalty_id"]] = record["churn_at"]
    flow, rate = run_until(with_model(config, model), events, cutoff)
    labels = {key: churn_at[key] <= cutoff for key in buyers(flow) if key in churn_at}
    name = f"simulator ({customers} customers, {days} d, seed {seed}), cutoff day {days - SIM_TAIL_DAYS}, {model}"
    ticks = ticks_between(events[0].ts, cutoff, config.churn.tick_ms)
    return judge(name, flow, rate, cutoff, labels, config.churn.horizon_ms / DAY_MS, ticks)


def uci_events() -> list[Event]:
    excluded: list[Any] = []
    return sorted(contract_events(events_from_csv(DEFAULT_CSV, excluded=excluded)), key=lambda e: (e.ts, e.event_id))


def uci(config: Config, events: list[Event], cutoff_day: str, model: str) -> Judged:
    cutoff = _utc(cutoff_day)
    end = cutoff + UCI_HORIZON_DAYS * DAY_MS
    bought_after = {
        LOYALTY + e.body["loyalty_id"]
        for e in events
        if e.type == "sale" and e.body.get("loyalty_id") and cutoff <= e.ts < end
    }
    flow, rate = run_until(with_model(config, model), events, cutoff)
    labels = {key: key not in bought_after for key in buyers(flow)}
    name = f"UCI Online Retail, cutoff {cutoff_day}, horizon {UCI_HORIZON_DAYS} d, {model}"
    ticks = ticks_between(events[0].ts, cutoff, config.churn.tick_ms)
    return judge(name, flow, rate, cutoff, labels, UCI_HORIZON_DAYS, ticks)


def state_per_customer(config: Config, events: list[Event], days: int = 120) -> tuple[float, int, int]:
    """Pickled state of the customer stages (domains and timers) after ``days``, per scored customer."""
    flow, _ = run_until(config, events, events[0].ts + days * DAY_MS)
    stages = (IDENTITY, CUSTOMERS, CHURN)
    domains = [d for stage in stages for d in flow.domains(stage)]
    timers = [shard.timers for stage in stages for shard in flow.shards[stage]]
    size = len(pickle.dumps([domains, timers], protocol=pickle.HIGHEST_PROTOCOL))
    keys = Counter(is_scored(key) for key in customer_profiles(flow))
    return size / max(keys[True], 1), keys[True], keys[False]


def check_bgnbd(path: str) -> None:
    """Fit the CDNOW sample (the csv lifetimes ships: ID,frequency,recency,T in weeks); print beside the paper's."""
    data = np.genfromtxt(path, delimiter=",", names=True)
    params, ll = fit_bgnbd(data["frequency"], data["recency"], data["T"])
    print(f"CDNOW: r={params.r:.4f} alpha={params.alpha:.4f} a={params.a:.4f} b={params.b:.4f} log-likelihood={ll:.2f}"
          "  (published: r=0.243 alpha=4.414 a=0.793 b=2.426, log-likelihood -9582.4)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--models", default=MODELS[0], help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--uci-cutoffs", default=",".join(UCI_CUTOFFS))
    parser.add_argument("--skip-uci", action="store_true")
    parser.add_argument("--skip-sim", action="store_true")
    parser.add_argument("--state", action="store_true", help="also the pickled state per customer after 120 days")
    parser.add_argument("--check-bgnbd", metavar="CSV", help="fit BG/NBD on the CDNOW summary and stop")
    parser.add_argument("--learn-every", type=int, help="override churn.learn_every")
    parser.add_argument("--score-change", type=float, help="override churn.score_change")
    parser.add_argument("--window-days", type=float, help="override churn.window (windowed_logistic)")
    args = parser.parse_args(argv)
    if args.check_bgnbd:
        check_bgnbd(args.check_bgnbd)
        return 0
    config = load_config()
    if args.learn_every is not None:
        config = replace(config, churn=replace(config.churn, learn_every=args.learn_every))
    if args.score_change is not None:
        config = replace(config, churn=replace(config.churn, score_change=args.score_change))
    if args.window_days is not None:
        config = replace(config, churn=replace(config.churn, window_ms=int(args.window_days * DAY_MS)))
    models = args.models.split(",")
    events = None if args.skip_uci else uci_events()
    for model in models:
        if not args.skip_sim:
            print(show(simulated(config, args.customers, args.days, args.seed, model)), flush=True)
        if events is not None:
            for cutoff_day in args.uci_cutoffs.split(","):
                print(show(uci(config, events, cutoff_day, model)), flush=True)
    if args.state:
        settings = SimulationSettings(seed=args.seed, customers=args.customers, days=120, anomalies=False)
        sim = list(contract_events(simulate(settings)))
        for name, log in (("simulator", sim), ("UCI", events or uci_events())):
            per, scored, devices = state_per_customer(config, log)
            print(f"\nstate after 120 days, {name}: {per:,.0f} bytes per customer "
                  f"({scored} accounts and cards, {devices} devices)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
