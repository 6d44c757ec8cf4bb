"""``channelflow demo``: the whole product on one machine, no Docker, no setup.

Starts the embedded Kafka-protocol broker, creates the topics, runs the flow
and the simulator as child processes (the same ``channelflow run`` and
``channelflow simulate`` an operator would use), and prints a live summary
read from the flow's own ``/metrics`` endpoint until Ctrl-C.
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
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType

from prometheus_client.parser import text_string_to_metric_families

from channelflow.broker import EmbeddedBroker
from channelflow.config import INPUT_TOPIC_KEYS, Config
from channelflow.kafka_io import create_topics

SUMMARY_EVERY_S = 2.0


def scrape(url: str) -> dict[str, float]:
    """Sum every ``channelflow_*`` sample of a /metrics page by name (labels summed over);
    promotions actually sent are also summed as ``promotions_sent``, and the latest
    watermark over the shards is ``watermark`` (epoch seconds)."""
    with urllib.request.urlopen(url, timeout=2) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("channelflow_") and not sample.name.endswith("_created"):
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
                if sample.name == "channelflow_promotions_total" and sample.labels.get("outcome") == "sent":
                    totals["promotions_sent"] = totals.get("promotions_sent", 0.0) + sample.value
                if sample.name == "channelflow_watermark_timestamp_seconds":
                    totals["watermark"] = max(totals.get("watermark", 0.0), sample.value)
    return totals


def summary_line(
    now: Mapping[str, float],
    before: Mapping[str, float],
    seconds: float,
    currency: str = "",
    speed: float | None = None,
) -> str:
    """One line of the live summary: simulated time and ``speed`` (simulated seconds per
    second), then totals and the event rate over the last ``seconds``.

    >>> summary_line({"channelflow_events_total": 300, "channelflow_orders_total": 4,
    ...               "channelflow_revenue_total": 99.5, "watermark": 1_767_614_400.0},
    ...              {"channelflow_events_total": 100}, 2.0, "GBP", speed=600.0)
    'simulated 2026-01-05 12:00 UTC (600x) | events 300 (100/s) | orders 4 | revenue 99.50 GBP | returns 0 | stock-outs 0 | dead letters 0 | duplicates 0 | late 0 | promotions sent 0 | churn scores 0 | anomaly alerts 0'
    """
    events = now.get("channelflow_events_total", 0.0)
    rate = (events - before.get("channelflow_events_total", 0.0)) / seconds if seconds > 0 else 0.0
    watermark = now.get("watermark", 0.0)
    if watermark:
        shown = f"{speed:.0f}x" if speed else "..."
        clock = datetime.fromtimestamp(watermark, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        simulated = f"simulated {clock} ({shown})"
    else:
        simulated = "simulated time: waiting for the first watermark"
    return (
        f"{simulated}"
        f" | events {events:.0f} ({rate:.0f}/s)"
        f" | orders {now.get('channelflow_orders_total', 0):.0f}"
        f" | revenue {now.get('channelflow_revenue_total', 0):.2f}{' ' + currency if currency else ''}"
        f" | returns {now.get('channelflow_returns_total', 0):.0f}"
        f" | stock-outs {now.get('channelflow_stock_outs', 0):.0f}"
        f" | dead letters {now.get('channelflow_dead_letters_total', 0):.0f}"
        f" | duplicates {now.get('channelflow_duplicates_total', 0):.0f}"
        f" | late {now.get('channelflow_late_events_total', 0):.0f}"
        f" | promotions sent {now.get('promotions_sent', 0):.0f}"
        f" | churn scores {now.get('channelflow_customer_scores_total', 0):.0f}"
        f" | anomaly alerts {now.get('channelflow_anomalies_total', 0):.0f}"
    )


def _child_env(config: Config, broker: EmbeddedBroker, state_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["CHANNELFLOW_KAFKA__BROKERS"] = broker.bootstrap
    env["CHANNELFLOW_FLOW__RECOVERY_DIR"] = str(state_dir / "recovery")
    if config.source is not None:
        env["CHANNELFLOW_CONFIG"] = str(config.source)
    return env


class _Stop(Exception):
    """A stop signal (SIGTERM, SIGHUP) for the demo's main loop."""


def _raise_stop(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    """Stop the children one after the other, in the order given (simulator, then flow)."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def run_demo(config: Config, args: argparse.Namespace) -> int:
    """Run broker, flow and simulator until Ctrl-C, SIGTERM or SIGHUP (or ``args.duration`` seconds).

    The children run in sessions of their own, so a Ctrl-C reaches only this
    process, which stops them in order: the simulator, the flow, then the broker.
    """
    if config.kafka.client:
        # They are for the configured cluster; the flow and simulator would take them to the broker here.
        names = ", ".join(f"kafka.client.{name}" for name in config.kafka.client)
        print(f"channelflow demo: the embedded broker takes no client settings; remove {names}", file=sys.stderr)
        return 2
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _raise_stop)
    python = sys.executable
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory(prefix="channelflow-demo-") as state:
        print(f"embedded broker on {broker.bootstrap}", flush=True)
        create_topics(broker.bootstrap, config.kafka.topics.values(), config.kafka.topic_partitions)
        env = _child_env(config, broker, Path(state))
        pacing = ["--speed", str(args.speed)] if args.speed else ["--rate", str(args.rate)]
        topics = [f"--topic={k}={config.kafka.topics[k]}" for k in INPUT_TOPIC_KEYS]
        logs = ["--log-format", args.log_format]
        flow = subprocess.Popen([python, "-m", "channelflow.cli", *logs, "run"], env=env, start_new_session=True)
        simulator = subprocess.Popen(
            [python, "-m", "channelflow.cli", *logs, "simulate", "--brokers", broker.bootstrap, "--days", "0",
             "--customers", str(args.customers), "--seed", str(args.seed), *topics, *pacing],
            env=env, start_new_session=True,
        )  # fmt: skip
        children = [simulator, flow]
        url = f"http://{config.metrics.host}:{config.metrics.port}/metrics"
        print(f"flow metrics on {url} (health: /healthz, /readyz); Ctrl-C to stop", flush=True)
        started = time.monotonic()
        before: dict[str, float] = {}
        last = started
        first: tuple[float, float] | None = None  # (watermark, wall clock) when first seen
        try:
            while args.duration is None or time.monotonic() - started < args.duration:
                time.sleep(SUMMARY_EVERY_S)
                for child in children:
                    if child.poll() is not None:
                        print(f"a child process exited with code {child.returncode}", file=sys.stderr)
                        return 1
                try:
                    now = scrape(url)
                except OSError:
                    continue  # the flow is still starting
                tick = time.monotonic()
                # Speed since the first watermark: the watermark moves in steps, the average does not.
                if first is None and now.get("watermark"):
                    first = (now["watermark"], tick)
                speed = (now["watermark"] - first[0]) / (tick - first[1]) if first and tick > first[1] else None
                print(summary_line(now, before, tick - last, config.currency, speed), flush=True)
                before, last = now, tick
        except (KeyboardInterrupt, _Stop):
            print("\nstopping: simulator, flow, broker...", flush=True)
        finally:
            _stop(children)
    print("stopped", flush=True)
    return 0
