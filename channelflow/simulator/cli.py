"""The ``simulate`` subcommand: arguments and the entry point the main CLI wires in."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import IO, Any

import orjson

from channelflow.simulator.engine import simulate
from channelflow.simulator.pacing import paced_by_rate, paced_by_speed
from channelflow.simulator.settings import DEFAULT_LOCATIONS, DEFAULT_START_MS, SimulationSettings
from channelflow.simulator.truth import GroundTruthWriter
from operators.contract.events import INPUT_TOPICS, parse_ts


def _start(text: str) -> int:
    try:
        return parse_ts(int(text) if text.isdigit() else text)
    except Exception:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time or epoch ms: {text!r}") from None


def _topic(text: str) -> tuple[str, str]:
    logical, sep, name = text.partition("=")
    if not sep or logical not in INPUT_TOPICS or not name:
        raise argparse.ArgumentTypeError(f"expected LOGICAL=NAME with LOGICAL one of {', '.join(INPUT_TOPICS)}, got {text!r}")
    return logical, name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to ``parser`` (the ``simulate`` subcommand's parser)."""
    world = parser.add_argument_group("what to simulate")
    world.add_argument("--seed", type=int, default=1, help="random seed: same seed and options, same bytes (default 1)")
    world.add_argument("--customers", type=int, default=1000, help="active customers (default 1000)")
    world.add_argument("--start", type=_start, default=DEFAULT_START_MS, help="event time of the start: RFC 3339 or epoch ms (default 2026-01-05T00:00:00Z)")
    world.add_argument("--days", type=float, default=1.0, help="simulated days; 0 streams forever (default 1)")
    world.add_argument("--no-anomalies", dest="anomalies", action="store_false", help="inject no anomalies")
    world.add_argument("--anomalies-per-day", type=float, default=1.0, help="expected anomalies of each kind per simulated day (default 1)")
    world.add_argument("--mean-lifetime-days", type=float, default=180.0, help="mean customer lifetime before churn (default 180)")
    world.add_argument("--skus", type=int, default=200, help="catalogue size (default 200)")
    world.add_argument("--max-events", type=int, default=None, help="stop after this many events")
    out = parser.add_argument_group("where to write")
    out.add_argument("--output", default=None, help="JSON lines file, '-' for stdout (channelflow simulate without "
                     "--output or --brokers produces to the configured Kafka; ignored with --brokers)")
    out.add_argument("--brokers", default=None, help="Kafka bootstrap host:port: produce to Kafka instead of JSON lines")
    out.add_argument("--topic", type=_topic, action="append", default=[], metavar="LOGICAL=NAME", help="Kafka topic name of a logical topic (default: the same name); repeatable")
    out.add_argument("--partitions", type=int, default=1, help="partitions of topics created if missing (default 1)")
    out.add_argument("--ground-truth", default=None, metavar="PATH", help="write the ground truth as JSON lines ('-' for stderr)")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, default=None, help="events per wall-clock second (default: as fast as possible)")
    pace.add_argument("--speed", type=float, default=None, help="simulated seconds per wall-clock second")


def settings_from(args: argparse.Namespace) -> SimulationSettings:
    """The :class:`SimulationSettings` the parsed arguments ask for."""
    return SimulationSettings(
        seed=args.seed,
        customers=args.customers,
        start_ms=args.start,
        days=args.days or None,
        anomalies=args.anomalies,
        anomalies_per_day=args.anomalies_per_day,
        skus=args.skus,
        mean_lifetime_days=args.mean_lifetime_days,
    )


def write_lines(events: Iterable[dict[str, Any]], out: IO[bytes], *, flush_each: bool = False) -> int:
    """Write events as JSON lines; return how many."""
    count = 0
    for event in events:
        out.write(orjson.dumps(event) + b"\n")
        count += 1
        if flush_each:
            out.flush()
    out.flush()
    return count


def _to_kafka(args: argparse.Namespace, events: Iterator[dict[str, Any]]) -> int:
    from channelflow.kafka_io import create_topics, event_records, produce

    topic_names = {name: name for name in INPUT_TOPICS} | dict(args.topic)
    client = getattr(args, "kafka_client", None)
    create_topics(args.brokers, topic_names.values(), partitions=args.partitions, client=client)
    return produce(args.brokers, event_records(events, topic_names), rate=args.rate, client=client)


def _to_lines(args: argparse.Namespace, events: Iterator[dict[str, Any]]) -> int:
    if args.rate:
        events = paced_by_rate(events, args.rate)
    paced = bool(args.rate or args.speed)
    if args.output in (None, "-"):
        return write_lines(events, sys.stdout.buffer, flush_each=paced)
    with open(args.output, "wb") as out:
        return write_lines(events, out, flush_each=paced)


def main(args: argparse.Namespace) -> int:
    """Run the simulator as ``args`` say; the exit code (0 ok, 2 bad options, 1 failure)."""
    try:
        settings = settings_from(args)
    except ValueError as exc:
        print(f"simulate: error: {exc}", file=sys.stderr)
        return 2
    truth = GroundTruthWriter(args.ground_truth) if args.ground_truth else None
    try:
        events = simulate(settings, getattr(args, "locations", None) or DEFAULT_LOCATIONS, truth)
        if args.max_events is not None:
            events = islice(events, args.max_events)
        if args.speed:
            events = paced_by_speed(events, args.speed)
        count = _to_kafka(args, events) if args.brokers else _to_lines(args, events)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"simulate: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if truth is not None:
            truth.close()
    print(f"simulate: {count} events", file=sys.stderr)
    return 0
