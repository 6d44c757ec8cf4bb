"""Incremental snapshots at scale: one snapshot's CPU and a restart's time to its first output.

Builds the state of every domain stage for ``--customers`` (a million by default)
synthetically: the real stages run over ``--seed-customers`` simulated customers
for ``--days``, then every customer-keyed entry of their tracked dicts
(:mod:`operators.state.tracked`) is copied under new keys until the shards hold
``--customers`` customers. That state is stored once (the first snapshot, which
writes everything), then ``--rounds`` times ``--touched`` of the customers are
changed, as events would change them, and a snapshot is timed: that is what
every snapshot interval costs, in the end with old segments being copied
forward too (the store's steady state). Last, once that process has exited, a
new one restores every shard from the stores and pushes one event through: the
time to that first output, from the restore and from the process's start; then
one more snapshot with ``--touched`` of the customers changed (the values of
their entries are read from the store for it), and, apart, the reading of
every value the restore left in the store until first read. The baseline, measured in the same run on the simulated customers
and scaled linearly to the grown state, is a snapshot as it was before
snapshots were incremental: every shard pickled whole (and unpickled, for a
restart). Figures are CPU seconds (user and system) and wall seconds.

``--live`` instead times what a live flow pauses for at each snapshot: simulated events
re-stamped at ``--rate`` per second of event time (as live input is), through every domain
stage in-process with ``time.allowed_lateness`` of them held, a snapshot of every shard
after each ``flow.snapshot_interval`` of events; it prints each stage's wall milliseconds per
snapshot (all its shards), at each snapshot and as medians over the last half.

    .venv/bin/python bench/snapshots.py --customers 1000000
    .venv/bin/python bench/snapshots.py --live --seconds 120
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

from channelflow.config import load_config, load_promotions
from channelflow.runner import tune_gc
from channelflow.simulator import DEFAULT_LOCATIONS, SimulationSettings, simulate
from flows.customer_wiring import customer_profiles
from flows.local import LocalFlow
from flows.main import domain_specs
from flows.stateful import EntityStores
from operators.contract.events import event_of
from operators.state.tracked import TrackedDict, tracked_dicts


def grow(flow: LocalFlow, factor: int) -> list[str]:
    """Copy every customer-keyed entry ``factor - 1`` times under new keys; every customer key."""
    customers = set(customer_profiles(flow))
    keys: list[str] = []
    for shards in flow.shards.values():
        for shard in shards:
            for tracked in tracked_dicts(shard):
                originals = [(k, v) for k, v in dict.items(tracked) if isinstance(k, str) and _customer_of(k, customers)]
                for n in range(1, factor):
                    for key, value in originals:
                        dict.__setitem__(tracked, f"{key}~{n}", value)
    for n in range(factor):
        keys.extend(customers if n == 0 else (f"{key}~{n}" for key in customers))
    return keys


def _customer_of(key: str, customers: set[str] | dict[str, Any]) -> bool:
    return _owner(key, customers) is not None


def _owner(key: str, customers: set[str] | dict[str, Any]) -> str | None:
    """The customer a key is of (the key itself, or its part after the first or last colon)."""
    for candidate in (key, key.rpartition(":")[2], key.partition(":")[2]):
        if candidate in customers:
            return candidate
    return None


def _entries_by_customer(dicts: list[TrackedDict[Any, Any]], keys: list[str]) -> dict[str, list[tuple[TrackedDict[Any, Any], Any]]]:
    """Every entry of ``dicts`` keyed by a customer of ``keys``, by customer."""
    owned: dict[str, list[tuple[TrackedDict[Any, Any], Any]]] = {key: [] for key in keys}
    for tracked in dicts:
        for key in dict.keys(tracked):
            if isinstance(key, str):
                owner = _owner(key, owned)
                if owner is not None:
                    owned[owner].append((tracked, key))
    return owned


def _touch(owned: dict[str, list[tuple[TrackedDict[Any, Any], Any]]], customers: list[str]) -> None:
    """Change every entry of ``customers``, as their events would (marked changed, not rewritten)."""
    for customer in customers:
        for tracked, key in owned[customer]:
            tracked.touch(key)


def restart(folder: Path, spawned: float | None, touched: float) -> None:
    """A restarted process: restore every shard from ``folder``, push one event, report (with the
    wall time since ``spawned``, when its parent started it, if given)."""
    config = load_config()
    headers, last = pickle.loads((folder / "restart.pickle").read_bytes())
    tune_gc()  # as `channelflow run` does before its flow resumes
    before, wall = os.times(), time.perf_counter()
    restarted = LocalFlow(domain_specs(config, load_promotions()), config.flow.shards)
    restarted.restore(folder, headers)
    restarted.push(last)
    restarted.advance(last.ts + 1)
    after = os.times()
    print(f"restart to its first output (restore every shard, then one event): "
          f"{after.user - before.user + after.system - before.system:.1f} s CPU "
          f"({after.system - before.system:.1f} s of it in the kernel), {time.perf_counter() - wall:.1f} s wall "
          f"({len(restarted.outputs)} outputs)")
    if spawned is not None:
        print(f"  the process from its start to its first output: {time.time() - spawned:.1f} s wall")
    # The first snapshot after it, with ``touched`` of the customers changed (as in each round
    # before the restart): the values of their entries are read from the store for it.
    dicts = [tracked for shards in restarted.shards.values() for shard in shards for tracked in tracked_dicts(shard)]
    keys = list(customer_profiles(restarted))
    _touch(_entries_by_customer(dicts, keys), random.Random(8).sample(keys, int(len(keys) * touched)))
    before = os.times()
    restarted.snapshot(folder)
    after = os.times()
    print(f"  then a snapshot with {touched:.0%} of the customers changed: "
          f"{after.user - before.user + after.system - before.system:.2f} s CPU")
    # Values of customers not seen since the restart stay in the store until first read (the
    # daily churn tick reads them all): that deferred cost, all of it at once.
    before = os.times()
    for shards in restarted.shards.values():
        for shard in shards:
            for tracked in tracked_dicts(shard):
                tracked.load_all()
    after = os.times()
    print(f"  then every value not read yet read: {after.user - before.user + after.system - before.system:.1f} "
          f"s CPU ({after.system - before.system:.1f} s in the kernel)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed-customers", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--touched", type=float, default=0.01, help="share of customers changed per snapshot")
    parser.add_argument("--rounds", type=int, default=80, help="snapshots timed, each after new changes")
    parser.add_argument("--keep", type=Path, help="write the stores here and keep them (restart again with "
                        "--restart FOLDER)")
    parser.add_argument("--restart", type=Path, help="only restart from the stores --keep kept")
    parser.add_argument("--live", action="store_true", help="time each stage's snapshot of a live stream instead")
    parser.add_argument("--rate", type=int, default=1_000, help="--live: events per second of event time")
    parser.add_argument("--seconds", type=int, default=120, help="--live: seconds of event time")
    parser.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.live:
        live(args.rate, args.seconds)
    elif args.restart is not None:
        restart(args.restart, args.spawned, args.touched)
    elif args.build is not None:
        build(args, args.build)
    else:
        # Each its own process, the restarted one after the first has exited (and freed its memory).
        folder = args.keep or Path(tempfile.mkdtemp(prefix="cf-snapshots-"))
        try:
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--build", str(folder)], check=True)
            subprocess.run([sys.executable, __file__, "--restart", str(folder), "--spawned", str(time.time()),
                            "--touched", str(args.touched)], check=True)  # fmt: skip
        finally:
            if args.keep is None:
                shutil.rmtree(folder, ignore_errors=True)
    return 0


def live(rate: int, seconds: int) -> None:
    """Each stage's snapshot time on a live stream (see the module docstring)."""
    config = load_config()
    start = 1_796_000_000_000
    bodies = islice(simulate(SimulationSettings(seed=5, customers=5_000, days=None), DEFAULT_LOCATIONS), rate * seconds)
    events = [event_of({**body, "ts": start + n * 1_000 // rate}) for n, body in enumerate(bodies)]
    flow = LocalFlow(domain_specs(config, load_promotions()), config.flow.shards)
    per = rate * config.flow.snapshot_interval_ms // 1_000
    tune_gc()
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="cf-live-snapshots-") as folder:
        stores = EntityStores(Path(folder))
        for n in range(0, len(events), per):
            flow.run(events[n : n + per], lateness_ms=config.time.allowed_lateness_ms)
            row = dict.fromkeys(flow.shards, 0.0)
            for stage, shards in flow.shards.items():
                for k, shard in enumerate(shards):
                    store = flow.store(stores, stage, k)
                    wall = time.perf_counter()
                    store.snapshot(shard)
                    row[stage] += (time.perf_counter() - wall) * 1_000
            rows.append(row)
            print(f"{(n + per) // rate:4d} s: {sum(row.values()):5.0f} ms  " + "  ".join(f"{stage} {ms:.0f}" for stage, ms in row.items()), flush=True)
    steady = rows[len(rows) // 2 :]
    medians = {stage: statistics.median(row[stage] for row in steady) for stage in rows[0]}
    print(f"median of the last {len(steady)} snapshots: {statistics.median(sum(row.values()) for row in steady):.0f} ms "
          "in all; " + ", ".join(f"{stage} {ms:.0f}" for stage, ms in medians.items()))


def build(args: argparse.Namespace, folder: Path) -> None:
    """Grow the state, store it, time snapshots after changes; leave what a restart needs in ``folder``."""
    config = load_config()
    log = sorted((event_of(body) for body in simulate(
        SimulationSettings(seed=11, customers=args.seed_customers, days=args.days, anomalies=False),
        DEFAULT_LOCATIONS)), key=lambda e: (e.ts, e.event_id))  # fmt: skip
    *history, last = log
    flow = LocalFlow(domain_specs(config, load_promotions()), config.flow.shards)
    flow.run(history, lateness_ms=config.time.allowed_lateness_ms)
    seed = len(customer_profiles(flow))
    tune_gc()
    # Baseline, in this run: a snapshot as it was before it was incremental, the whole state pickled
    # (measured on the simulated customers, linear in them, so scaled to the grown state).
    shards = [shard for stage in flow.shards.values() for shard in stage]
    started = time.process_time()
    whole = [pickle.dumps(shard, protocol=pickle.HIGHEST_PROTOCOL) for shard in shards]
    pickled_s = time.process_time() - started
    started = time.process_time()
    for blob in whole:
        pickle.loads(blob)
    unpickled_s = time.process_time() - started
    factor = max(1, round(args.customers / seed))
    keys = grow(flow, factor)
    dicts = [tracked for shards in flow.shards.values() for shard in shards for tracked in tracked_dicts(shard)]
    entries = sum(len(tracked) for tracked in dicts)
    print(f"{len(keys):,} customers ({seed:,} simulated over {args.days} days, each copied {factor} times), "
          f"{entries:,} entries in {len(dicts)} tracked dicts over {len(shards)} shards")
    baseline, baseline_restore = pickled_s / seed * len(keys), unpickled_s / seed * len(keys)
    print(f"baseline, the whole state pickled: {pickled_s / seed * 1e6:.1f} µs CPU per customer, "
          f"{baseline:.1f} s at {len(keys):,}; unpickled: {baseline_restore:.1f} s")

    started, wall = time.process_time(), time.perf_counter()
    flow.snapshot(folder)
    print(f"first snapshot (everything): {time.process_time() - started:.1f} s CPU, "
          f"{time.perf_counter() - wall:.1f} s wall")

    # What the customers' events would change: every entry of theirs (profiles, timers, ...),
    # for a new sample of customers at each snapshot, until old segments are being copied
    # forward (the steady state: superseded entries are a quarter of what is stored).
    owned = _entries_by_customer(dicts, keys)
    pick = random.Random(7)
    cpus: list[float] = []
    walls: list[float] = []
    copied: list[int] = []
    for _ in range(args.rounds):
        _touch(owned, pick.sample(keys, int(len(keys) * args.touched)))
        started, wall = time.process_time(), time.perf_counter()
        headers = flow.snapshot(folder)
        cpus.append(time.process_time() - started)
        walls.append(time.perf_counter() - wall)
        copied.append(sum(store.last_copied for store in flow.stores.values()))
    written = sum(store.last_written for store in flow.stores.values())
    header_bytes = sum(map(len, headers.values()))
    copying = [cpu for cpu, n in zip(cpus, copied, strict=True) if n]
    steady = (f"copying forward in {len(copying)} of them: {statistics.median(copying):.2f} s CPU median, "
              f"{max(copying):.2f} s max" if copying else "none copied forward")
    print(f"{args.rounds} snapshots, each with {int(len(keys) * args.touched):,} customers ({args.touched:.0%}) "
          f"changed: {statistics.median(cpus):.2f} s CPU median, {max(cpus):.2f} s max, "
          f"{statistics.median(walls):.2f} s wall median; {steady}; the last wrote "
          f"{written:,} entries ({copied[-1]:,} copied), headers {header_bytes:,} bytes; "
          f"median {statistics.median(cpus) / baseline:.3f} of the baseline")
    slowest = sorted(range(len(cpus)), key=cpus.__getitem__)[-3:]
    print("  slowest: " + ", ".join(f"#{n + 1} {cpus[n]:.2f} s ({copied[n]:,} copied)" for n in reversed(slowest)))
    read = sum(store.db.execute("SELECT SUM(size) FROM segments WHERE seg NOT IN (SELECT seg FROM copies)").fetchone()[0] or 0
               for store in flow.stores.values())  # fmt: skip
    print(f"a restore reads {read:,} entries for {entries:,} current ({read / entries:.2f}x)")

    # A restart is a new process: it is timed from its start (imports included) to its first output.
    (folder / "restart.pickle").write_bytes(pickle.dumps((headers, last)))
    print(f"the baseline unpickles the whole state in {baseline_restore:.1f} s CPU; restarting:", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
