"""Memory soak: a live run at a steady rate over a fixed population; does RSS stay flat?

Starts the embedded broker, the flow (``channelflow run``, recovery on) and the
simulator at ``--rate`` events per wall-clock second over ``--customers``
customers who never churn away (a fixed population), samples the flow
process's resident set size every ``--every`` seconds, and prints the samples
and the growth from the end of the warm-up to the end of the run.

Usage: ``python bench/soak.py --minutes 30 --warmup 10 --rate 200 --customers 2000``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from channelflow.broker import EmbeddedBroker, free_port  # noqa: E402
from channelflow.config import INPUT_TOPIC_KEYS, load_config  # noqa: E402
from channelflow.demo import scrape  # noqa: E402
from channelflow.kafka_io import create_topics  # noqa: E402


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=10.0, help="minutes before the reference sample")
    parser.add_argument("--rate", type=float, default=200.0, help="events per wall-clock second")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    config = load_config()
    python = sys.executable
    port = free_port()
    samples: list[tuple[float, float, float]] = []  # (minutes, events, RSS MB)
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory(prefix="channelflow-soak-") as state:
        create_topics(broker.bootstrap, config.kafka.topics.values(), config.kafka.topic_partitions)
        env = dict(os.environ, CHANNELFLOW_KAFKA__BROKERS=broker.bootstrap, CHANNELFLOW_METRICS__PORT=str(port),
                   CHANNELFLOW_FLOW__RECOVERY_DIR=str(Path(state) / "recovery"))
        topics = [f"--topic={k}={config.kafka.topics[k]}" for k in INPUT_TOPIC_KEYS]
        flow = subprocess.Popen([python, "-m", "channelflow.cli", "run"], env=env, cwd=ROOT)
        simulator = subprocess.Popen(
            [python, "-m", "channelflow.cli", "simulate", "--brokers", broker.bootstrap, "--days", "0",
             "--customers", str(args.customers), "--seed", str(args.seed), "--mean-lifetime-days", "1000000",
             "--rate", str(args.rate), *topics],
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
                    events = scrape(f"http://127.0.0.1:{port}/metrics").get("channelflow_events_total", 0.0)
                except OSError:
                    continue
                samples.append((elapsed / 60, events, rss_mb(flow.pid)))
                print(f"{elapsed / 60:6.1f} min  {events:10,.0f} events  {samples[-1][2]:8.1f} MB RSS", flush=True)
        finally:
            for child in (simulator, flow):
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in (simulator, flow):
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    child.kill()
    after_warmup = [s for s in samples if s[0] >= args.warmup]
    if len(after_warmup) < 2:
        print("not enough samples after the warm-up", file=sys.stderr)
        return 1
    (m0, e0, r0), (m1, e1, r1) = after_warmup[0], after_warmup[-1]
    print(f"\n| from | to | events in between | RSS at start (MB) | RSS at end (MB) | growth |\n|---|---|---:|---:|---:|---:|\n"
          f"| {m0:.1f} min | {m1:.1f} min | {e1 - e0:,.0f} | {r0:.1f} | {r1:.1f} | {100 * (r1 - r0) / r0:+.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
