"""Replay JSON-lines files of contract events into Kafka (``channelflow replay``).

Each line is one event object; the Kafka topic follows from its ``type`` and the
key from :func:`operators.contract.events.partition_key`. A line that is not a JSON
object with a known ``type`` is never dropped: it is either produced as raw
bytes to a chosen topic (so the flow dead-letters it) or the replay refuses to
start. Blank lines separate nothing and carry nothing, so they are skipped.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "events.jsonl"
>>> _ = path.write_text('{"type": "sale", "event_id": "e1"}\\n[1]\\n')
>>> good, bad = read_events(path)
>>> good
{'type': 'sale', 'event_id': 'e1'}
>>> bad.line_no, bad.raw, bad.problem
(2, b'[1]', 'not a JSON object: got list')
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any

import orjson

from channelflow.kafka_io import Properties, Record, create_topics, event_record, produce
from channelflow.progress import on_terminal, progress
from operators.contract.events import INPUT_TOPICS, TOPIC_OF_TYPE

__all__ = [
    "IDENTITY_TOPICS",
    "BadLine",
    "ReplayError",
    "add_arguments",
    "add_kafka_arguments",
    "main",
    "parse_topic_names",
    "read_events",
    "records",
    "replay",
]

IDENTITY_TOPICS: dict[str, str] = {topic: topic for topic in INPUT_TOPICS}


class ReplayError(Exception):
    """A replay input cannot be sent as asked (the message names file and line)."""


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that is not a JSON object with a known ``type``: where, what, and its bytes."""

    source: str
    line_no: int
    raw: bytes
    problem: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line_no}: {self.problem}"


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _problem(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"not a JSON object: got {type(value).__name__}"
    event_type = value.get("type")
    if not isinstance(event_type, str):
        return "no string field 'type'"
    if event_type not in TOPIC_OF_TYPE:
        return f"unknown type {event_type[:64]!r}"
    return None


def read_events(path: str | Path) -> Iterator[dict[str, Any] | BadLine]:
    """The events of a JSON-lines file (``.gz`` accepted), in order; bad lines as :class:`BadLine`."""
    path = Path(path)
    with _open_binary(path) as stream:
        for line_no, line in enumerate(stream, start=1):
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield BadLine(str(path), line_no, raw, f"not valid JSON: {exc}")
                continue
            problem = _problem(value)
            yield value if problem is None else BadLine(str(path), line_no, raw, problem)


def records(
    items: Iterable[dict[str, Any] | BadLine],
    topic_names: Mapping[str, str],
    raw_topic: str | None = None,
) -> Iterator[Record]:
    """Kafka records for events and bad lines; a bad line without ``raw_topic`` raises :class:`ReplayError`.

    ``topic_names`` maps logical topics to Kafka names; unmapped ones keep their logical name.
    """
    names = {**IDENTITY_TOPICS, **topic_names}
    for item in items:
        if isinstance(item, BadLine):
            if raw_topic is None:
                raise _refused(item)
            yield raw_topic, None, item.raw
        else:
            yield event_record(item, names)


def _refused(line: BadLine) -> ReplayError:
    return ReplayError(f"{line} (use --raw-topic to send such lines to the flow)")


def _items(paths: Sequence[str | Path]) -> Iterator[dict[str, Any] | BadLine]:
    for path in paths:
        yield from read_events(path)


def _check_no_bad_lines(paths: Sequence[str | Path], limit: int | None) -> None:
    for item in islice(_items(paths), limit):
        if isinstance(item, BadLine):
            raise _refused(item)


def replay(
    paths: Sequence[str | Path],
    brokers: str,
    topic_names: Mapping[str, str] = IDENTITY_TOPICS,
    rate: float | None = None,
    *,
    limit: int | None = None,
    raw_topic: str | None = None,
    create: bool = False,
    client: Properties | None = None,
) -> int:
    """Produce the lines of ``paths`` in order (at most ``limit``, ``rate`` per second); return the count.

    Without ``raw_topic`` every file is checked first, so a bad line fails the
    replay before anything is sent. ``create`` creates the target topics first.
    ``client`` adds librdkafka properties (a secured cluster's: ``[kafka.client]``).
    """
    if raw_topic is None:
        _check_no_bad_lines(paths, limit)
    if create:
        wanted = [*{**IDENTITY_TOPICS, **topic_names}.values(), *([raw_topic] if raw_topic else [])]
        create_topics(brokers, wanted, client=client)
    total = _count_lines(paths, limit) if on_terminal() else None
    items = progress(islice(_items(paths), limit), total=total, desc="replay")
    return produce(brokers, records(items, topic_names, raw_topic), rate=rate, client=client)


def _count_lines(paths: Sequence[str | Path], limit: int | None) -> int:
    """Lines in ``paths`` (at most ``limit``): the progress bar's total."""
    count = 0
    for path in paths:
        with _open_binary(Path(path)) as stream:
            count += sum(1 for line in stream if line.strip())
    return count if limit is None else min(count, limit)


def parse_topic_names(pairs: Iterable[str]) -> dict[str, str]:
    """``LOGICAL=KAFKA`` pairs to a topic mapping.

    >>> parse_topic_names(["pos=shop.pos"])
    {'pos': 'shop.pos'}
    """
    names: dict[str, str] = {}
    for pair in pairs:
        logical, sep, kafka_name = pair.partition("=")
        if not sep or logical not in INPUT_TOPICS or not kafka_name:
            raise ValueError(f"--topic wants LOGICAL=KAFKA with LOGICAL one of {', '.join(INPUT_TOPICS)}; got {pair!r}")
        names[logical] = kafka_name
    return names


def add_kafka_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by the commands that produce to Kafka."""
    parser.add_argument("--brokers", metavar="HOST:PORT", help="Kafka bootstrap servers")
    parser.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="LOGICAL=KAFKA",
        help="Kafka topic name of a logical input topic (repeatable; default: the logical name)",
    )
    parser.add_argument("--rate", type=float, metavar="N", help="events per second (default: as fast as possible)")
    parser.add_argument("--limit", type=int, metavar="N", help="stop after N events")
    parser.add_argument("--create-topics", action="store_true", help="create missing topics first")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``channelflow replay``."""
    parser.add_argument("paths", nargs="+", type=Path, metavar="FILE", help="JSON-lines files (.gz accepted)")
    add_kafka_arguments(parser)
    parser.add_argument(
        "--raw-topic",
        metavar="NAME",
        help="send lines that are not events (bad JSON, unknown type) as raw bytes to this topic",
    )


def main(args: argparse.Namespace) -> int:
    """Run ``channelflow replay``; the exit code."""
    if not args.brokers:
        print("channelflow replay: --brokers is required", file=sys.stderr)
        return 2
    try:
        topic_names = parse_topic_names(args.topic)
        count = replay(
            args.paths,
            args.brokers,
            topic_names,
            args.rate,
            limit=args.limit,
            raw_topic=args.raw_topic,
            create=args.create_topics,
            client=getattr(args, "kafka_client", None),
        )
    except (ReplayError, ValueError, OSError, RuntimeError) as exc:
        print(f"channelflow replay: {exc}", file=sys.stderr)
        return 1
    print(f"replayed {count} messages", file=sys.stderr)
    return 0
