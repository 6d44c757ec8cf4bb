"""Memory soak: a live run at a steady rate over a fixed population; does RSS stay flat?

Starts the embedded broker, the flow (``channelflow run``, recovery on) and the
simulator at ``--rate`` events per wall-clock second over ``--customers``
customers who never churn away (a fixed population), samples the flow
process's resident set size and its watermark every ``--every`` seconds, and
prints the samples and the growth from the end of the warm-up to the end of
the run.

The warm-up ends when the flow's event time has passed the longest horizon of
event time that bounds its state (:func:`state_horizons`; with the shipped
config the labelled examples in the churn model's window, which fills for
``churn.window`` after the first snapshots are labelled, ``churn.horizon`` plus
``churn.learn_every`` ticks in): before that, state grows by design. The script
prints every horizon and the sample the warm-up ended at; ``--warmup MINUTES``
sets it by wall clock instead. It also reports when the churn model passed its
own warm-up (``churn.warmup`` examples of each label), after which the scores
come from the model rather than the recency prior.

``--state`` is the fast diagnosis: no broker and no Bytewax, the same simulated
log (same seed and population) through the flow's domain stages in-process
(:class:`flows.local.LocalFlow`, de-duplicated as the sequencer does), printing
every ``--state-days`` of event time each stage's pickled state (what a recovery
snapshot stores) and the Python heap the stages hold (tracemalloc), for
``--minutes`` of the live run's event count at ``--rate``.

Usage: ``python bench/soak.py --minutes 30 --rate 300 --customers 2000`` (add
``--state`` for the in-process measure).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import FrameType

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from channelflow.broker import EmbeddedBroker, free_port  # noqa: E402
from channelflow.config import INPUT_TOPIC_KEYS, Config, load_config, load_promotions  # noqa: E402
from channelflow.demo import scrape  # noqa: E402
from channelflow.kafka_io import create_topics  # noqa: E402
from operators.promotions.rules import PromotionSettings  # noqa: E402

DAY_MS = 86_400_000
#: Where the simulated log starts (a Monday, as the simulator's default): far enough in the past that a
#: long soak never simulates past the wall clock (events beyond ingest.max_future are dead letters).
START_MS = 1_578_268_800_000  # 2020-01-06T00:00:00Z


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def state_horizons(config: Config, promotions: PromotionSettings) -> dict[str, int]:
    """Event time (ms) after which each kind of time-bounded state stops growing for a fixed population.

    Each is how long the flow keeps an entry of that kind: once the run's event time
    has passed it, entries leave as fast as new ones come. State bounded by a count
    (profiles per customer, the last 32 purchases, 20 views) is not listed: it fills
    with activity, not with time.
    """
    churn, policy, rules = config.churn, promotions.policy, promotions.rules
    waitlists = [getattr(r.params, "waitlist_ttl_ms", 0) for r in rules if r.enabled]
    labelled = churn.horizon_ms + churn.learn_every * churn.tick_ms  # every customer's first kept snapshot labelled
    horizons = {
        "churn snapshots waiting for their label (churn.horizon + churn.learn_every x churn.tick)": labelled,
        "anonymous devices (customers.device_ttl)": config.customers.device_ttl_ms,
        "published churn scores' republish age (churn.republish)": churn.republish_ms,
        "open promotions (longest expiry or policy.attribution_window)":
            max([policy.attribution_window_ms, *(r.expiry_ms for r in rules if r.enabled)]),
        "back-in-stock waitlist places (waitlist_ttl)": max(waitlists, default=0),
        "frequency-cap send times (longest cap window)":
            max((cap.window_ms for caps in policy.frequency_caps.values() for cap in caps), default=0),
        "pickup reservations (inventory.pickup_expiry)": config.inventory.pickup_expiry_ms,
        "seen event ids (time.dedupe_horizon)": config.time.dedupe_horizon_ms,
    }  # fmt: skip
    if churn.model == "windowed_logistic":  # examples stay in its window for churn.window after their label
        horizons["labelled examples in the churn model's window (the above + churn.window)"] = labelled + churn.window_ms
    return horizons


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # stop the children in order (the finally below)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=None,
                        help="minutes before the reference sample (default: until event time passes the longest "
                             "state horizon)")
    parser.add_argument("--rate", type=float, default=300.0, help="events per wall-clock second")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--state", action="store_true", help="in-process state and heap by event time instead")
    parser.add_argument("--state-days", type=float, default=10.0, help="with --state: days between measures")
    args = parser.parse_args()
    if args.state:
        return state_growth(int(args.minutes * 60 * args.rate), args.customers, args.seed, args.state_days)

    config = load_config()
    horizons = state_horizons(config, load_promotions())
    longest = max(horizons, key=lambda name: horizons[name])
    print("state horizons (event time):")
    for name, ms in sorted(horizons.items(), key=lambda item: -item[1]):
        print(f"  {ms / DAY_MS:8.2f} d  {name}")
    if args.warmup is None:
        print(f"warm-up: until event time has passed {horizons[longest] / DAY_MS:.1f} d ({longest})\n", flush=True)
    warm_at_s = (START_MS + horizons[longest]) / 1000
    python = sys.executable
    port = free_port()
    # (minutes, events, event-time days since the start, RSS MB)
    samples: list[tuple[float, float, float, float]] = []
    model_ready: tuple[float, float] | None = None  # (minutes, days) when the churn model passed its warm-up
    signal.signal(signal.SIGTERM, _stop)
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory(prefix="channelflow-soak-") as state:
        create_topics(broker.bootstrap, config.kafka.topics.values(), config.kafka.topic_partitions)
        env = dict(os.environ, CHANNELFLOW_KAFKA__BROKERS=broker.bootstrap, CHANNELFLOW_METRICS__PORT=str(port),
                   CHANNELFLOW_FLOW__RECOVERY_DIR=str(Path(state) / "recovery"))
        topics = [f"--topic={k}={config.kafka.topics[k]}" for k in INPUT_TOPIC_KEYS]
        flow = subprocess.Popen([python, "-m", "channelflow.cli", "run"], env=env, cwd=ROOT)
        simulator = subprocess.Popen(
            [python, "-m", "channelflow.cli", "simulate", "--brokers", broker.bootstrap,
             *simulator_args(args.customers, args.seed), "--rate", str(args.rate), *topics],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        started = time.monotonic()
        try:
            while time.monotonic() - started < args.minutes * 60:
                time.sleep(args.every)
                elapsed = time.monotonic() - started
                if flow.poll() is not None or simulator.poll() is not None:
                    print("a child process exited early", file=sys.stderr)
                    return 1
                try:
                    metrics = scrape(f"http://127.0.0.1:{port}/metrics")
                except OSError:
                    continue
                events = metrics.get("channelflow_events_total", 0.0)
                watermark = metrics.get("watermark", 0.0)
                days = max(0.0, watermark * 1000 - START_MS) / DAY_MS
                samples.append((elapsed / 60, events, days, rss_mb(flow.pid)))
                learned = metrics.get("channelflow_churn_examples_total", 0.0)
                if model_ready is None and _churn_ready(port, config.churn.warmup):
                    model_ready = (elapsed / 60, days)
                warm = " " if watermark < warm_at_s else "*"
                print(f"{elapsed / 60:6.1f} min  {events:10,.0f} events  {days:6.1f} d {warm} "
                      f"{samples[-1][3]:8.1f} MB RSS  {learned:7,.0f} churn examples", flush=True)
        except KeyboardInterrupt:
            print("stopped early", file=sys.stderr)
        finally:
            for child in (simulator, flow):
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in (simulator, flow):
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    child.kill()
    if args.warmup is not None:
        after_warmup = [s for s in samples if s[0] >= args.warmup]
    else:
        after_warmup = [s for s in samples if s[2] * DAY_MS >= horizons[longest]]
    if len(after_warmup) < 2:
        print("not enough samples after the warm-up", file=sys.stderr)
        return 1
    (m0, e0, d0, r0), (m1, e1, d1, r1) = after_warmup[0], after_warmup[-1]
    print(f"\nrate {args.rate:g} events/s: {samples[-1][2] / samples[-1][0]:.2f} simulated days per minute")
    if model_ready is not None:
        print(f"churn model past its warm-up ({config.churn.warmup} examples of each label) at "
              f"{model_ready[0]:.1f} min ({model_ready[1]:.0f} d)")
    else:
        print(f"churn model not past its warm-up ({config.churn.warmup} examples of each label) in this run")
    print(f"\n| from | to | event time | events in between | RSS at start (MB) | RSS at end (MB) | growth |\n"
          f"|---|---|---|---:|---:|---:|---:|\n"
          f"| {m0:.1f} min | {m1:.1f} min | day {d0:.0f} to {d1:.0f} | {e1 - e0:,.0f} | {r0:.1f} | {r1:.1f} "
          f"| {100 * (r1 - r0) / r0:+.1f}% |")
    return 0


def simulator_args(customers: int, seed: int) -> list[str]:
    """The simulator's options: the soak's fixed population, streaming until stopped."""
    return ["--days", "0", "--customers", str(customers), "--seed", str(seed), "--mean-lifetime-days", "1000000",
            "--start", str(START_MS)]


def state_growth(n_events: int, customers: int, seed: int, every_days: float) -> int:
    """The soak's log through the domain stages in-process; pickled state per stage and heap by event time.

    The simulator runs in its own process (``--output -``), so the heap measured is the stages'.
    """
    import gc
    import pickle
    import tracemalloc

    import orjson

    from flows.local import LocalFlow
    from flows.main import domain_specs
    from operators.contract.events import event_of
    from operators.time.dedupe import Deduplicator

    tracemalloc.start()
    config = load_config()
    lateness = config.time.allowed_lateness_ms
    flow = LocalFlow(domain_specs(config, load_promotions()), config.flow.shards)
    seen = Deduplicator(config.time.dedupe_horizon_ms)
    print(f"| events | event time (d) | Python heap (MB) | {' | '.join(flow.shards)} (pickled KB) |")
    print(f"|---:|---:|---:|{'---:|' * len(flow.shards)}")
    latest = next_at = START_MS
    command = [sys.executable, "-m", "channelflow.cli", "simulate", *simulator_args(customers, seed),
               "--max-events", str(n_events), "--output", "-"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE) as simulator:
        assert simulator.stdout is not None
        for n, line in enumerate(simulator.stdout, 1):
            event = event_of(orjson.loads(line))
            latest = max(latest, event.ts)
            if not seen.is_duplicate(event.event_id, latest, event.topic):
                flow.push(event)
            if n % 1_000 and n != n_events:
                continue
            seen.expire(latest - lateness)
            flow.advance(latest - lateness)
            flow.outputs.clear()
            if latest >= next_at or n == n_events:
                next_at += int(every_days * DAY_MS)
                gc.collect()
                heap = tracemalloc.get_traced_memory()[0] / 2**20
                sizes = [sum(len(pickle.dumps(shard, pickle.HIGHEST_PROTOCOL)) for shard in shards) / 1024
                         for shards in flow.shards.values()]
                print(f"| {n:,} | {(latest - START_MS) / DAY_MS:.0f} | {heap:.1f} | "
                      f"{' | '.join(f'{kb:,.0f}' for kb in sizes)} |", flush=True)
    return 0


def _churn_ready(port: int, warmup: int) -> bool:
    """Has the churn model learned ``warmup`` examples of each label (read off /metrics)?"""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        text = response.read().decode()
    learned = {label: 0.0 for label in ("churned", "stayed")}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "channelflow_churn_examples_total" and sample.labels.get("label") in learned:
                learned[sample.labels["label"]] += sample.value
    return min(learned.values()) >= warmup


if __name__ == "__main__":
    sys.exit(main())
