"""Replaying JSON-lines files into Kafka: reading, routing, refusing bad lines, and a real broker."""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from channelflow import replay
from channelflow.broker import EmbeddedBroker
from channelflow.kafka_io import consume_all, create_topics

SALE = {
    "event_id": "p1",
    "type": "sale",
    "ts": "2026-11-22T10:15:30.123Z",
    "store_id": "S012",
    "receipt_id": "R1",
    "loyalty_id": None,
    "lines": [{"sku": "MUG", "qty": 2, "unit_price": 4.5}],
    "total": 9.0,
}
SEARCH = {
    "event_id": "c1",
    "type": "search",
    "ts": 1795342530123,
    "channel": "web",
    "session_id": "s1",
    "anonymous_id": "a1",
    "query": "mug",
}
RECEIVED = {"event_id": "i1", "type": "stock_received", "ts": 0, "location_id": "S012", "sku": "MUG", "qty": 5}
CONSENT = {"event_id": "u1", "type": "consent_changed", "ts": 0, "customer_id": "cust-9", "marketing": True}
BAD_JSON = b'{"event_id": "x1", "type": "sale"'
UNKNOWN_TYPE = b'{"event_id": "x2", "type": "teleport", "ts": 0}'


def write_jsonl(path: Path, lines: list[bytes]) -> Path:
    data = b"".join(line + b"\n" for line in lines)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def mixed_file(tmp_path: Path, name: str = "mixed.jsonl") -> Path:
    lines = [orjson.dumps(e) for e in (SALE, SEARCH)] + [BAD_JSON, b"", orjson.dumps(RECEIVED)]
    return write_jsonl(tmp_path / name, [*lines, UNKNOWN_TYPE, orjson.dumps(CONSENT)])


@pytest.mark.parametrize("name", ["mixed.jsonl", "mixed.jsonl.gz"])
def test_read_events_keeps_order_and_marks_bad_lines(tmp_path: Path, name: str) -> None:
    path = mixed_file(tmp_path, name)
    items = list(replay.read_events(path))
    assert [item if isinstance(item, dict) else item.line_no for item in items] == [SALE, SEARCH, 3, RECEIVED, 6, CONSENT]
    bad = [item for item in items if isinstance(item, replay.BadLine)]
    assert [(b.line_no, b.raw) for b in bad] == [(3, BAD_JSON), (6, UNKNOWN_TYPE)]
    assert bad[0].problem.startswith("not valid JSON")
    assert str(bad[1]) == f"{path}:6: unknown type 'teleport'"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"[1, 2]", "not a JSON object: got list"),
        (b'"sale"', "not a JSON object: got str"),
        (b'{"event_id": "e"}', "no string field 'type'"),
        (b'{"type": 7}', "no string field 'type'"),
        (b'{"type": "teleport"}', "unknown type 'teleport'"),
    ],
)
def test_lines_that_are_not_routable_events(tmp_path: Path, line: bytes, problem: str) -> None:
    [bad] = replay.read_events(write_jsonl(tmp_path / "one.jsonl", [line]))
    assert isinstance(bad, replay.BadLine)
    assert (bad.line_no, bad.raw, bad.problem) == (1, line, problem)


def test_crlf_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(orjson.dumps(SEARCH) + b"\r\n   \r\n" + orjson.dumps(CONSENT) + b"\r\n")
    assert list(replay.read_events(path)) == [SEARCH, CONSENT]


def test_records_route_by_type_and_key_by_entity() -> None:
    bad = replay.BadLine("f.jsonl", 3, BAD_JSON, "not valid JSON")
    records = list(replay.records([SALE, SEARCH, bad, RECEIVED, CONSENT], {"pos": "shop.pos"}, "raw-in"))
    assert records == [
        ("shop.pos", b"S012", orjson.dumps(SALE)),
        ("clickstream", b"a1", orjson.dumps(SEARCH)),
        ("raw-in", None, BAD_JSON),
        ("inventory", b"MUG", orjson.dumps(RECEIVED)),
        ("customers", b"cust-9", orjson.dumps(CONSENT)),
    ]


def test_records_refuse_a_bad_line_without_raw_topic() -> None:
    bad = replay.BadLine("f.jsonl", 3, BAD_JSON, "not valid JSON")
    with pytest.raises(replay.ReplayError, match=r"^f\.jsonl:3: not valid JSON \(use --raw-topic"):
        list(replay.records([SALE, bad], {}))


def test_replay_refuses_bad_lines_before_connecting(tmp_path: Path) -> None:
    path = mixed_file(tmp_path)
    with pytest.raises(replay.ReplayError, match=rf"^{path}:3: not valid JSON"):
        replay.replay([path], "127.0.0.1:1")


def test_parse_topic_names() -> None:
    assert replay.parse_topic_names(["pos=a.pos", "inventory=a.inv"]) == {"pos": "a.pos", "inventory": "a.inv"}
    for wrong in ("pos", "orders=a", "pos="):
        with pytest.raises(ValueError, match="LOGICAL=KAFKA"):
            replay.parse_topic_names([wrong])


def cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    replay.add_arguments(parser)
    return parser.parse_args(argv)


def test_main_needs_brokers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert replay.main(cli_args(str(mixed_file(tmp_path)))) == 2
    assert "--brokers is required" in capsys.readouterr().err


def test_main_names_file_and_line_of_a_bad_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = mixed_file(tmp_path)
    assert replay.main(cli_args(str(path), "--brokers", "127.0.0.1:1")) == 1
    assert f"channelflow replay: {path}:3: not valid JSON" in capsys.readouterr().err


def test_main_reports_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert replay.main(cli_args(str(tmp_path / "nope.jsonl"), "--brokers", "127.0.0.1:1")) == 1
    assert "nope.jsonl" in capsys.readouterr().err


def decoded(pairs: list[tuple[bytes | None, bytes]]) -> list[tuple[bytes | None, Any]]:
    return [(key, orjson.loads(value)) for key, value in pairs]


@pytest.mark.integration
def test_replay_into_a_real_broker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = mixed_file(tmp_path, "mixed.jsonl.gz")
    names = {"clickstream": "t.clicks", "pos": "t.pos", "inventory": "t.inventory", "customers": "t.customers"}
    with EmbeddedBroker() as broker:
        create_topics(broker.bootstrap, [*names.values(), "t.raw"])
        argv = [str(path), "--brokers", broker.bootstrap, "--raw-topic", "t.raw"]
        argv += [f"--topic={logical}={kafka}" for logical, kafka in names.items()]
        assert replay.main(cli_args(*argv)) == 0
        got = {topic: consume_all(broker.bootstrap, topic, expect=n, timeout=20) for topic, n in [
            ("t.pos", 1), ("t.clicks", 1), ("t.inventory", 1), ("t.customers", 1), ("t.raw", 2),
        ]}
    assert "replayed 6 messages" in capsys.readouterr().err
    assert got["t.pos"] == [(b"S012", orjson.dumps(SALE))]
    assert got["t.clicks"] == [(b"a1", orjson.dumps(SEARCH))]
    assert got["t.inventory"] == [(b"MUG", orjson.dumps(RECEIVED))]
    assert got["t.customers"] == [(b"cust-9", orjson.dumps(CONSENT))]
    assert got["t.raw"] == [(None, BAD_JSON), (None, UNKNOWN_TYPE)]
    assert decoded(got["t.pos"]) == [(b"S012", SALE)]


@pytest.mark.integration
def test_replay_limit_counts_every_message(tmp_path: Path) -> None:
    path = mixed_file(tmp_path)
    with EmbeddedBroker() as broker:
        sent = replay.replay([path, path], broker.bootstrap, limit=4, raw_topic="raw", create=True)
        raw = consume_all(broker.bootstrap, "raw", expect=1, timeout=20)
        pos = consume_all(broker.bootstrap, "pos", idle=1.0, timeout=20)
    assert sent == 4
    assert raw == [(None, BAD_JSON)]
    assert pos == [(b"S012", orjson.dumps(SALE))]
