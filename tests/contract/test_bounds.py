"""Bounds that keep one message from stopping or stalling the flow (docs/contract.md, "Bounds").

Integers and amounts within 64 bits with margin, nesting depth, unknown-field size, plausible
event times, dead letters that fit the output limit, outputs that never fail to serialize,
and a sink that turns refused deliveries into counted dead letters.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.kafka_sink import DeadLetteringPartition, error_code
from flows.steps import to_kafka
from operators.contract.dead_letter import MAX_OUTPUT_BYTES, MIN_OUTPUT_BYTES, dead_letter
from operators.contract.events import (
    ERROR_CODES,
    MAX_DEPTH,
    MAX_QTY,
    MIN_EVENT_TIME_MS,
    OUTPUT_ERROR_CODES,
    Event,
    Limits,
    Rejection,
    parse,
    unknown_bytes,
)
from operators.contract.money import to_millis
from operators.time.stream_items import Output

NOW = 1_795_342_530_123  # 2026-11-22T10:15:30.123Z
DAY = 86_400_000
LIMITS = Limits()


def sale(**changes: Any) -> dict[str, Any]:
    body = {"event_id": "p1", "type": "sale", "ts": NOW - 1000, "store_id": "S001", "receipt_id": "r1",
            "loyalty_id": None, "lines": [{"sku": "SKU-1", "qty": 2, "unit_price": 4.5}], "total": 9.0}  # fmt: skip
    body.update(changes)
    return body


def flow_parse(body: Any, topic: str = "pos", received_at: int = NOW, limits: Limits = LIMITS) -> Event | Rejection:
    """``parse`` as the flow's decoder calls it."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()  # any integer, as text
    return parse(raw, topic, max_bytes=1 << 24, limits=limits, received_at_ms=received_at)


def error_of(result: Event | Rejection) -> str | None:
    return result.error if isinstance(result, Rejection) else None


def nested_json(depth: int) -> bytes:
    """``depth`` levels of arrays around 1, as JSON text (deeper than encoders go)."""
    return b"[" * depth + b"1" + b"]" * depth


def with_raw(body: dict[str, Any], **fields: bytes) -> bytes:
    """``body`` as JSON with ``fields`` set to raw JSON text."""
    raw = orjson.dumps({**body, **{k: f"@{k}@" for k in fields}})
    for k, text in fields.items():
        raw = raw.replace(f'"@{k}@"'.encode(), text)
    return raw


def nested(depth: int) -> Any:
    """``depth`` levels of alternating arrays and objects around 1."""
    value: Any = 1
    for level in range(depth):
        value = {"n": value} if level % 2 else [value]
    return value


# -- integers and amounts --------------------------------------------------------------


def test_the_line_that_stopped_the_flow_is_out_of_range() -> None:
    result = flow_parse(sale(lines=[{"sku": "SKU-1", "qty": 2**64 - 1, "unit_price": 4.5}]))
    assert error_of(result) == "out_of_range"
    assert "lines[0].qty" in result.detail  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ({"qty": MAX_QTY, "unit_price": 999.999}, None),  # 999,998,999 < 10^9
        ({"qty": MAX_QTY, "unit_price": 1000}, "out_of_range"),  # = 10^9
        ({"qty": 1, "unit_price": 999_999_999.999}, None),
        ({"qty": 2, "unit_price": 500_000_000}, "out_of_range"),
    ],
)
def test_a_lines_value_is_bounded_like_an_amount(line: dict[str, Any], error: str | None) -> None:
    assert error_of(flow_parse(sale(lines=[{"sku": "SKU-1", **line}]))) == error


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-(2**70), 2**70), st.integers(0, 2 * 10**12).map(lambda m: m / 1000)),
        min_size=1,
        max_size=30,
    )
)
def test_accepted_quantities_and_amounts_stay_far_inside_64_bits(lines: list[tuple[int, float]]) -> None:
    """Whatever a sale's lines hold, an accepted one's sums and products in milli-units fit in
    an int64 with a margin of over 1000 (up to 1000 lines)."""
    body = sale(lines=[{"sku": "SKU-1", "qty": q, "unit_price": p} for q, p in lines])
    result = flow_parse(body)
    if isinstance(result, Event):
        line_values = [line["qty"] * to_millis(line["unit_price"]) for line in result.body["lines"]]
        assert all(0 <= v < 10**12 for v in line_values)
        assert sum(line_values) * 1000 < 2**63  # even with 1000 lines
        orjson.dumps({"sum": sum(line_values) * 1000})  # encodes
    else:
        assert result.error in ("out_of_range", "wrong_type")


# -- depth -------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [29, 30, 31, 32, 33, 100, 600, 1000])
def test_nesting_deeper_than_the_limit_is_too_deep_anywhere(depth: int) -> None:
    # The event object is level 1: an unknown field holding `depth` levels reaches depth + 1.
    expected = None if depth + 1 <= MAX_DEPTH else "too_deep"
    assert error_of(flow_parse(with_raw(sale(), x=nested_json(depth)))) == expected
    line = b'[{"sku": "SKU-1", "qty": 1, "unit_price": 1, "x": ' + nested_json(depth) + b"}]"  # lines[] is 2
    assert error_of(flow_parse(with_raw(sale(), lines=line))) == (None if depth + 3 <= MAX_DEPTH else "too_deep")


def test_nesting_beyond_orjsons_limit_is_invalid_json() -> None:
    assert error_of(flow_parse(b'{"a":' * 1_100 + b"1" + b"}" * 1_100)) == "invalid_json"


def test_an_accepted_event_can_be_snapshotted_and_encoded() -> None:
    """What failed at 600 levels: Bytewax's deepcopy of state, and orjson's 254-level encoder."""
    result = flow_parse(sale(x=nested(MAX_DEPTH - 1)))
    assert isinstance(result, Event)
    copy.deepcopy(result)
    orjson.dumps(result.body)


def test_depth_is_checked_without_limits_too() -> None:
    assert error_of(parse(with_raw(sale(), x=nested_json(600)), "pos")) == "too_deep"


# -- unknown fields ---------------------------------------------------------------------


def test_unknown_fields_over_the_limit_are_oversize() -> None:
    assert isinstance(flow_parse(sale(x="z" * 16_000)), Event)
    result = flow_parse(sale(x="z" * 17_000))
    assert error_of(result) == "oversize" and "unknown fields" in result.detail  # type: ignore[union-attr]
    lines = [{"sku": f"SKU-{i}", "qty": 1, "unit_price": 1, "note": "n" * 100} for i in range(200)]
    assert error_of(flow_parse(sale(lines=lines))) == "oversize"  # 200 x ~110 bytes inside lines


def test_known_fields_do_not_count_as_unknown() -> None:
    lines = [{"sku": f"SKU-{i:05d}", "qty": 1, "unit_price": 1.5, "discount": 0.5} for i in range(1000)]
    body = sale(lines=lines, total=1000)
    assert len(orjson.dumps(body)) > 50_000
    assert unknown_bytes(body, "pos", "sale") == 0
    assert isinstance(flow_parse(body), Event)
    assert unknown_bytes(sale(x=1, y="ab"), "pos", "sale") == len(b'"x":1,"y":"ab"')


def test_without_limits_unknown_size_is_not_checked() -> None:
    assert isinstance(parse(orjson.dumps(sale(x="z" * 30_000)), "pos"), Event)


# -- event time -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "error"),
    [
        (NOW // 1000, "implausible_ts"),  # epoch seconds
        (MIN_EVENT_TIME_MS - 1, "implausible_ts"),
        (MIN_EVENT_TIME_MS, None),
        ("1999-12-31T23:59:59.999Z", "implausible_ts"),
        (NOW + DAY, None),
        (NOW + DAY + 1, "implausible_ts"),
        ("2199-06-01T00:00:00Z", "implausible_ts"),
        (-1, "out_of_range"),  # outside what the contract can read at all
    ],
)
def test_implausible_event_times(ts: Any, error: str | None) -> None:
    assert error_of(flow_parse(sale(ts=ts))) == error


def test_the_future_bound_moves_with_the_receipt_time() -> None:
    """A log replayed later is read later: an event plausible when it was written stays plausible."""
    body = sale(ts=NOW + 2 * DAY)
    assert error_of(flow_parse(body, received_at=NOW)) == "implausible_ts"
    assert isinstance(flow_parse(body, received_at=NOW + DAY), Event)
    assert isinstance(flow_parse(body, received_at=NOW + 365 * DAY), Event)


def test_the_time_bounds_come_from_the_limits() -> None:
    limits = Limits(min_ts_ms=0, max_future_ms=0)
    assert isinstance(flow_parse(sale(ts=5), limits=limits), Event)
    assert error_of(flow_parse(sale(ts=NOW + 1), limits=limits)) == "implausible_ts"


def test_field_errors_come_before_plausibility() -> None:
    body = sale(ts=0, lines=[{"sku": "SKU-1", "qty": -2, "unit_price": 1}])
    assert error_of(flow_parse(body)) == "out_of_range"


def test_epoch_seconds_get_a_hint() -> None:
    detail = flow_parse(sale(ts=NOW // 1000)).detail  # type: ignore[union-attr]
    assert "epoch seconds" in detail and "2000-01-01T00:00:00.000Z" in detail


def test_codes_are_listed() -> None:
    assert {"too_deep", "implausible_ts"} <= set(ERROR_CODES)
    assert set(OUTPUT_ERROR_CODES) == {"unserializable", "delivery_failed"}
    assert not set(OUTPUT_ERROR_CODES) & set(ERROR_CODES)


# -- dead letters fit the output limit -------------------------------------------------------


def letter_of(raw: bytes | None, max_bytes: int = MAX_OUTPUT_BYTES, detail: str = "why") -> dict[str, Any]:
    return dead_letter(raw, Rejection("oversize", detail), source_topic="pos", partition=1, offset=2,
                       received_at_ms=NOW, max_bytes=max_bytes)  # fmt: skip


def kept_bytes(record: dict[str, Any]) -> bytes:
    if record.get("raw_encoding") == "base64":
        return base64.b64decode(record["raw"], validate=True)
    return str(record["raw"]).encode("utf-8")


def big_payloads() -> st.SearchStrategy[bytes]:
    """Up to 2 MB: repeated chunks of random bytes, text, control characters or multi-byte text."""
    chunk = st.binary(max_size=64) | st.text(max_size=32).map(str.encode) | st.sampled_from(
        [b"\x00\x01\x1f", b'"\\', "é€😀".encode(), b"\xff\xfe", b"x"]
    )
    return st.tuples(chunk, st.integers(0, 2_000_000)).map(lambda t: (t[0] * (t[1] // max(1, len(t[0])) + 1))[: t[1]])


@settings(max_examples=60, deadline=None)
@given(big_payloads(), st.sampled_from([MIN_OUTPUT_BYTES, 100_000, MAX_OUTPUT_BYTES]))
def test_a_dead_letter_of_any_bytes_is_json_under_the_limit(raw: bytes, max_bytes: int) -> None:
    record = letter_of(raw, max_bytes)
    encoded = orjson.dumps(record)
    assert len(encoded) <= max_bytes
    assert orjson.loads(encoded) == record
    assert record["raw_bytes"] == len(raw)
    assert record["raw_sha256"] == hashlib.sha256(raw).hexdigest()
    kept = kept_bytes(record)
    if record["truncated"]:
        assert raw.startswith(kept) and len(kept) < len(raw)
        assert len(encoded) > max_bytes * 0.7  # truncation keeps most of what fits
    else:
        assert kept == raw


def test_the_letters_that_broke_kafka_now_fit() -> None:
    for raw in (b'{"pad": "' + b"x" * 999_990 + b'"}', b"\xff" * 800_000, b"\x01" * 800_000):
        record = letter_of(raw)
        assert len(orjson.dumps(record)) <= MAX_OUTPUT_BYTES
        assert record["truncated"] and record["raw_bytes"] == len(raw)


def test_a_small_letter_is_whole_and_a_tombstone_has_no_hash() -> None:
    record = letter_of(b"{}")
    assert (record["raw"], record["raw_bytes"], record["truncated"]) == ("{}", 2, False)
    assert letter_of(None)["raw_sha256"] is None


def test_a_long_detail_is_cut() -> None:
    assert len(letter_of(b"x", detail="d" * 50_000)["detail"]) == 1_000


def test_a_limit_below_the_envelope_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        letter_of(b"x", max_bytes=MIN_OUTPUT_BYTES - 1)


# -- serialize never raises ------------------------------------------------------------------

TOPICS = {"promotions": "promotions-t", "inventory_updates": "inv-t", "alerts": "alerts-t",
          "customer_scores": "scores-t", "dead_letters": "dead-t"}  # fmt: skip


def json_ish() -> st.SearchStrategy[Any]:
    leaves = (
        st.none() | st.booleans() | st.text(max_size=20) | st.floats(allow_nan=True)
        | st.integers(-(2**80), 2**80) | st.integers(0, 3).map(lambda e: 10 ** (5000 + e)) | st.builds(object)
    )  # fmt: skip
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(max_size=5) | st.integers() | st.floats(), inner, max_size=4), max_leaves=30)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(json_ish(), st.sampled_from(sorted(TOPICS)))
def test_serialize_never_raises(value: Any, topic: str) -> None:
    message = to_kafka(TOPICS, 50_000)(Output(topic, "k1", value, NOW))
    record = orjson.loads(message.value)
    assert len(message.value) <= 50_000
    if message.topic == TOPICS["dead_letters"] and topic != "dead_letters":
        assert record["error"] == "unserializable" and record["source_topic"] == topic
    else:
        assert message.topic == TOPICS[topic]


@pytest.mark.parametrize(
    "value",
    [
        {"qty": 2**64 - 1 + 1},  # beyond 64 bits: "Integer exceeds 64-bit range"
        {"deep": nested(600)},  # beyond orjson's 254 levels
        {"x": float("nan"), 1.5: "float key"},
        {"big": "b" * 60_000},  # over the output limit
    ],
    ids=["int", "deep", "keys", "big"],
)
def test_an_unwritable_record_becomes_a_dead_letter_naming_its_topic(value: Any) -> None:
    message = to_kafka(TOPICS, 50_000)(Output("alerts", "series-1", {"cause_event_id": "e9", **value}, NOW))
    assert message.topic == "dead-t" and message.key == b"series-1"
    record = orjson.loads(message.value)
    assert (record["error"], record["source_topic"], record["cause_event_id"]) == ("unserializable", "alerts", "e9")
    assert record["detail"]


def test_a_writable_record_is_unchanged() -> None:
    message = to_kafka(TOPICS)(Output("alerts", "s", {"a": 2**63}, NOW))
    assert (message.topic, message.key, message.value) == ("alerts-t", b"s", b'{"a":9223372036854775808}')


# -- the sink: refused deliveries are counted dead letters --------------------------------------


class FakeMessage:
    def __init__(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self._t, self._k, self._v = topic, key, value

    def topic(self) -> str:
        return self._t

    def key(self) -> bytes | None:
        return self._k

    def value(self) -> bytes | None:
        return self._v


class FakeProducer:
    """Refuses at produce() what is over ``local_limit`` (as librdkafka does with
    message.max.bytes) and at delivery what is over ``broker_limit`` (as a broker does)."""

    def __init__(self, local_limit: int, broker_limit: int) -> None:
        self.local_limit, self.broker_limit = local_limit, broker_limit
        self.queue: list[tuple[Any, FakeMessage]] = []
        self.delivered: list[FakeMessage] = []
        self.full_once = True

    def produce(self, topic: str, *, value: bytes | None, key: bytes | None, headers: Any, timestamp: int,
                on_delivery: Any) -> None:  # fmt: skip
        if self.full_once:
            self.full_once = False
            raise BufferError("Local: Queue full")
        if len(value or b"") > self.local_limit:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self.queue.append((on_delivery, FakeMessage(topic, key, value)))

    def poll(self, _timeout: float = 0) -> int:
        queue, self.queue = self.queue, []
        for callback, msg in queue:
            too_big = len(msg.value() or b"") > self.broker_limit
            if not too_big:
                self.delivered.append(msg)
            callback(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE) if too_big else None, msg)
        return len(queue)

    def flush(self, _timeout: float | None = None) -> int:
        while self.queue:
            self.poll()
        return 0


def sink_metric(topic: str, code: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("channelflow_delivery_failures_total", {"topic": topic, "code": code}) or 0.0


def test_refused_messages_become_counted_dead_letters_and_the_flow_goes_on() -> None:
    from bytewax.connectors.kafka import KafkaSinkMessage

    producer = FakeProducer(local_limit=100_000, broker_limit=50_000)
    sink = DeadLetteringPartition(
        producer, default_topic=None, dead_letters_topic="dead-t",
        logical_topics={v: k for k, v in TOPICS.items()}, clock=lambda: NOW,
    )  # fmt: skip
    before = sink_metric("alerts", "msg_size_too_large"), sink_metric("customer_scores", "msg_size_too_large")
    sink.write_batch([
        KafkaSinkMessage(b"a", b"1" * 10, topic="alerts-t"),
        KafkaSinkMessage(b"b", b"2" * 200_000, topic="alerts-t"),  # refused by the producer
        KafkaSinkMessage(b"c", b"3" * 60_000, topic="scores-t"),  # refused by the broker
        KafkaSinkMessage(b"d", b"4" * 10, topic="alerts-t"),
    ])  # fmt: skip
    delivered = [(m.topic(), m.key()) for m in producer.delivered]
    assert delivered[:2] == [("alerts-t", b"a"), ("alerts-t", b"d")]
    letters = {m.key(): orjson.loads(m.value() or b"") for m in producer.delivered if m.topic() == "dead-t"}
    assert set(letters) == {b"b", b"c"}
    assert letters[b"b"]["error"] == "delivery_failed" and letters[b"b"]["source_topic"] == "alerts"
    assert letters[b"c"]["source_topic"] == "customer_scores" and letters[b"c"]["raw_bytes"] == 60_000
    assert letters[b"c"]["raw_sha256"] == hashlib.sha256(b"3" * 60_000).hexdigest()
    assert all(len(orjson.dumps(d)) <= 16_384 and d["truncated"] for d in letters.values())
    assert "msg_size_too_large" in letters[b"b"]["detail"]
    after = sink_metric("alerts", "msg_size_too_large"), sink_metric("customer_scores", "msg_size_too_large")
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


def test_a_failing_dead_letter_is_counted_not_re_lettered() -> None:
    from bytewax.connectors.kafka import KafkaSinkMessage

    producer = FakeProducer(local_limit=10**9, broker_limit=5)  # the broker refuses everything
    sink = DeadLetteringPartition(producer, default_topic=None, dead_letters_topic="dead-t",
                                  logical_topics={v: k for k, v in TOPICS.items()})  # fmt: skip
    before = sink_metric("dead_letters", "msg_size_too_large")
    sink.write_batch([KafkaSinkMessage(b"k", b"x" * 100, topic="alerts-t")])
    sink.close()
    assert producer.delivered == []
    assert sink_metric("dead_letters", "msg_size_too_large") - before == 1  # the letter, once


def test_error_codes_are_bounded_names() -> None:
    assert error_code(KafkaError(KafkaError._MSG_TIMED_OUT)) == "msg_timed_out"
    assert error_code(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)) == "msg_size_too_large"
    assert error_code(None) == "unknown"
