"""The channelflow command: one entry point for running, demoing and feeding the flow."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

import orjson
import tomli_w
from confluent_kafka import KafkaError, KafkaException

from channelflow.config import (
    INPUT_TOPIC_KEYS,
    Config,
    ConfigError,
    effective_config,
    effective_promotions,
    from_mapping,
    hide_secrets,
    load_config,
    load_promotions,
)
from channelflow.logs import setup_logging
from operators.promotions.rules_file import promotions_from_mapping

# Subcommands whose arguments and body live in their own module
# (each module has ``add_arguments(parser)`` and ``main(args) -> int``).
_TOOLS = {
    "simulate": ("channelflow.simulator", "generate realistic, seeded retail traffic to Kafka or JSON lines"),
    "replay": ("channelflow.replay", "produce recorded JSON-lines events to Kafka"),
    "import-uci": ("channelflow.uci", "turn the UCI Online Retail CSV into contract events"),
    "anomaly-score": ("channelflow.anomaly_score", "score a timestamp,value CSV with the shipped anomaly detector"),
}


_EPILOG = """examples:
  channelflow demo                         everything on one machine, until Ctrl-C
  channelflow broker --create-topics       a local broker for run, replay and simulate (no Docker)
  channelflow run -c my.toml               the long-lived flow against the configured Kafka
  channelflow run --until-end              replay what the topics hold, then stop with a summary
  channelflow check-config --format json   the effective config (file + environment), validated

config: -c FILE, else $CHANNELFLOW_CONFIG, else the bundled channelflow.toml; promotion rules:
$CHANNELFLOW_PROMOTIONS, else the bundled promotions.toml. CHANNELFLOW_<SECTION>__<KEY>=value
overrides one key."""


def _common_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Options every command takes, before or after the command name (a later one wins)."""
    keep = None if top else argparse.SUPPRESS
    parser.add_argument("-c", "--config", default=keep, metavar="FILE",
                        help="config file (default: $CHANNELFLOW_CONFIG, else the bundled channelflow.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="debug logging")
    parser.add_argument("--log-format", choices=("text", "json"), default="text" if top else argparse.SUPPRESS,
                        help="log lines as text (default) or one JSON object per line")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="channelflow", description=__doc__, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _common_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _common_options(sub, top=False)
        return sub

    run = command("run", "run the long-lived flow against the configured Kafka")
    run.add_argument("-i", "--process-id", type=int, default=None, help="this process's index in a cluster")
    run.add_argument(
        "-a",
        "--addresses",
        default=None,
        help="'host:port;host:port' of every process of the cluster (same order everywhere)",
    )
    run.add_argument("--until-end", action="store_true", help="stop at the end of the input (replays) with a summary")
    run.add_argument("--create-topics", action="store_true", help="create missing topics first")
    run.add_argument("--dry-run", action="store_true",
                     help="build the dataflow, check that the topics exist, print the stages, and stop")

    demo = command("demo", "everything on one machine: embedded broker, simulator, flow, metrics")
    pace = demo.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, default=300.0, help="simulated events per second (default 300)")
    pace.add_argument("--speed", type=float, default=None, help="simulated seconds per wall second instead of --rate")
    demo.add_argument("--customers", type=int, default=2000, help="simulated customers (default 2000)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")

    broker = command("broker", "run the embedded Kafka-protocol broker on loopback (for run, replay, simulate without a Kafka)")
    broker.add_argument("--port", type=int, default=None,
                        help="its port (default: the port of kafka.brokers if that is on loopback, else 9092)")
    broker.add_argument("--create-topics", action="store_true", help="create the configured topics once it is up")

    command("topics", "create the configured input and output topics")
    check = command("check-config", "validate the config and the promotion rules, then print the effective values")
    check.add_argument("--format", choices=("toml", "json"), default="toml", help="output format (default toml)")

    for name, (module, help_text) in _TOOLS.items():
        sub = command(name, help_text)
        sub.set_defaults(tool_module=module)
        try:
            importlib.import_module(module).add_arguments(sub)
        except ImportError as exc:  # one broken tool must not take the other commands down
            sub.set_defaults(tool_error=f"{name} is unavailable: {exc}")
    return parser


def _create_topics(config: Config) -> None:
    from channelflow.kafka_io import create_topics

    create_topics(
        config.kafka.bootstrap, config.kafka.topics.values(), config.kafka.topic_partitions, client=config.kafka.client
    )


def _configured_kafka(args: argparse.Namespace) -> None:
    """A tool that produces to Kafka (``simulate``, ``replay``, ``import-uci``) opens its clients
    with the config's ``[kafka.client]`` properties (``args.kafka_client``); ``simulate`` and
    ``replay`` produce to the configured brokers and topic names unless told otherwise."""
    args.kafka_client = {}
    defaults = args.command in ("simulate", "replay") and not (args.command == "simulate" and args.output is not None)
    if not (getattr(args, "brokers", None) or defaults):
        return  # JSON lines were asked for
    config = load_config(args.config)
    args.kafka_client = dict(config.kafka.client)
    if args.brokers:
        return
    args.brokers = config.kafka.bootstrap
    if not args.topic:
        names = {k: config.kafka.topics[k] for k in INPUT_TOPIC_KEYS}
        args.topic = list(names.items()) if args.command == "simulate" else [f"{k}={v}" for k, v in names.items()]


def _serve_broker(config: Config, args: argparse.Namespace) -> int:
    from channelflow.broker import serve_until_stopped

    host, _, port_text = config.kafka.brokers[0].rpartition(":")
    port = args.port or (int(port_text) if host in ("127.0.0.1", "localhost") else 9092)
    topics = (list(config.kafka.topics.values()), config.kafka.topic_partitions) if args.create_topics else None
    return serve_until_stopped(port, topics, config.kafka.bootstrap)


def _check_config(args: argparse.Namespace) -> int:
    """Validate both files before printing anything; then print what the flow would use."""
    doc, source = effective_config(args.config)
    from_mapping(doc, source)
    rules, rules_source = effective_promotions()
    promotions_from_mapping(rules, rules_source)
    doc = hide_secrets(doc)
    if args.format == "json":
        shown = {"config": {"file": str(source), "values": doc}, "promotions": {"file": str(rules_source), "values": rules}}
        print(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
    else:
        print(f"# config: {source}\n{tomli_w.dumps(doc)}\n# promotions: {rules_source}\n{tomli_w.dumps(rules)}", end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(verbose=args.verbose, fmt=args.log_format)
    try:
        if getattr(args, "tool_error", None):
            print(f"channelflow: {args.tool_error}", file=sys.stderr)
            return 2
        if getattr(args, "tool_module", None):
            _configured_kafka(args)
            return int(importlib.import_module(args.tool_module).main(args))
        if args.command == "check-config":
            return _check_config(args)
        config = load_config(args.config)
        if args.command == "topics":
            _create_topics(config)
            return 0
        if args.command == "broker":
            return _serve_broker(config, args)
        if args.command == "demo":
            from channelflow.demo import run_demo

            return run_demo(config, args)
        if args.command == "run":
            promotions = load_promotions()  # a bad rules file is named before the brokers are asked anything
            if args.create_topics:
                _create_topics(config)
            if args.dry_run:
                from channelflow.pipeline import dry_run

                print(dry_run(config, promotions))
                return 0
            from channelflow.runner import run

            addresses = args.addresses.split(";") if args.addresses else None
            return run(config, process_id=args.process_id, addresses=addresses, until_end=args.until_end,
                       promotions=promotions)  # fmt: skip
    except ConfigError as exc:
        print(f"channelflow: invalid config: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the output piped into `head` and the like, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 1
    except KafkaException as exc:  # the brokers down or refusing: say so, without a traceback
        error = exc.args[0] if exc.args else exc
        text = error.str() if isinstance(error, KafkaError) else str(error)
        print(f"channelflow: Kafka: {text} (is kafka.brokers right, and is the broker up?)", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"channelflow: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
