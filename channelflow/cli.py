"""The ``channelflow`` command: one entry point for running, demoing and feeding the flow."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from channelflow.config import Config, ConfigError, load_config

# Subcommands whose arguments and body live in their own module
# (each module has ``add_arguments(parser)`` and ``main(args) -> int``).
_TOOLS = {
    "simulate": ("channelflow.simulator", "generate realistic, seeded retail traffic to Kafka or JSON lines"),
    "replay": ("channelflow.replay", "produce recorded JSON-lines events to Kafka"),
    "import-uci": ("channelflow.uci", "turn the UCI Online Retail CSV into contract events"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="channelflow", description=__doc__)
    parser.add_argument("-c", "--config", help="config file (default: $CHANNELFLOW_CONFIG or config/channelflow.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the long-lived flow against the configured Kafka")
    run.add_argument("-i", "--process-id", type=int, default=None, help="this process's index in a cluster")
    run.add_argument(
        "-a",
        "--addresses",
        default=None,
        help="'host:port;host:port' of every process of the cluster (same order everywhere)",
    )
    run.add_argument("--until-end", action="store_true", help="stop at the end of the input (replays)")
    run.add_argument("--create-topics", action="store_true", help="create missing topics first")

    demo = commands.add_parser("demo", help="everything on one machine: embedded broker, simulator, flow, metrics")
    demo.add_argument("--rate", type=float, default=300.0, help="simulated events per second (default 300)")
    demo.add_argument("--speed", type=float, default=None, help="simulated seconds per wall second instead of --rate")
    demo.add_argument("--customers", type=int, default=2000, help="simulated customers (default 2000)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")

    commands.add_parser("topics", help="create the configured input and output topics")
    commands.add_parser("check-config", help="validate the config and print the effective values")

    for name, (module, help_text) in _TOOLS.items():
        sub = commands.add_parser(name, help=help_text)
        sub.set_defaults(tool_module=module)
        try:
            importlib.import_module(module).add_arguments(sub)
        except ImportError as exc:  # one broken tool must not take the other commands down
            sub.set_defaults(tool_error=f"{name} is unavailable: {exc}")
    return parser


def _create_topics(config: Config) -> None:
    from channelflow.kafka_io import create_topics

    create_topics(config.kafka.bootstrap, config.kafka.topics.values(), config.kafka.topic_partitions)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if getattr(args, "tool_error", None):
            print(f"channelflow: {args.tool_error}", file=sys.stderr)
            return 2
        if getattr(args, "tool_module", None):
            return int(importlib.import_module(args.tool_module).main(args))
        config = load_config(args.config)
        if args.command == "check-config":
            from channelflow.config import load_promotions

            print(config)
            print(load_promotions())
            return 0
        if args.command == "topics":
            _create_topics(config)
            return 0
        if args.command == "demo":
            from channelflow.demo import run_demo

            return run_demo(config, args)
        if args.command == "run":
            from channelflow.runner import run

            if args.create_topics:
                _create_topics(config)
            addresses = args.addresses.split(";") if args.addresses else None
            return run(config, process_id=args.process_id, addresses=addresses, until_end=args.until_end)
    except ConfigError as exc:
        print(f"channelflow: invalid config: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"channelflow: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
