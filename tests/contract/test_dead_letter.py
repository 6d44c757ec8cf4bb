"""Dead-letter records (``operators.contract.dead_letter``): the refused message, why, and its exact bytes."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.contract.dead_letter import dead_letter, iso_ms
from operators.contract.events import ERROR_CODES, Rejection, parse, parse_ts

REQUIRED = ("error", "detail", "source_topic", "partition", "offset", "raw", "received_at")
RECEIVED_MS = 1_795_342_530_123


def letter(raw: bytes | None, rejection: Rejection | None = None, **kw: Any) -> dict[str, Any]:
    """A dead letter of ``raw`` on pos/3@41, received at :data:`RECEIVED_MS`."""
    args: dict[str, Any] = {
        "source_topic": "pos",
        "partition": 3,
        "offset": 41,
        "received_at_ms": RECEIVED_MS,
    }
    args.update(kw)
    return dead_letter(raw, rejection or Rejection("invalid_json", "not valid JSON"), **args)


def original_bytes(record: dict[str, Any]) -> bytes | None:
    """The message bytes a consumer of ``dead-letters`` rebuilds from a record."""
    if record["raw"] is None:
        return None
    if record.get("raw_encoding") == "base64":
        return base64.b64decode(record["raw"], validate=True)
    return record["raw"].encode("utf-8")


def test_required_fields_are_present_with_their_values() -> None:
    record = letter(b'{"oops"', Rejection("invalid_json", "not valid JSON: eof"))
    assert set(REQUIRED) <= set(record)
    assert record["error"] == "invalid_json"
    assert record["detail"] == "not valid JSON: eof"
    assert record["source_topic"] == "pos"
    assert (record["partition"], record["offset"]) == (3, 41)
    assert record["raw"] == '{"oops"'
    assert record["received_at"] == "2026-11-22T10:15:30.123Z"


def test_like_every_output_it_carries_ts_and_cause_event_id() -> None:
    record = letter(b"{}")
    assert record["ts"] == record["received_at"]
    assert "cause_event_id" in record and record["cause_event_id"] is None


@pytest.mark.parametrize(
    "raw",
    [b'{"event_id": "e1"', "caf\u00e9 \u2615 \U0001f6d2".encode(), b"", b"\x00\x01 control", b"\xef\xbb\xbf{}"],
    ids=repr,
)
def test_utf8_raw_is_kept_as_text(raw: bytes) -> None:
    record = letter(raw)
    assert record["raw"] == raw.decode("utf-8")
    assert "raw_encoding" not in record


@pytest.mark.parametrize(
    "raw",
    [b"\xff", b'{"a": "\xff"}', b"\xc3\x28", b"\xed\xa0\x80", b"\x80" * 10, bytes(range(256))],
    ids=repr,
)
def test_non_utf8_raw_is_base64(raw: bytes) -> None:
    record = letter(raw, Rejection("invalid_utf8", "bad"))
    assert record["raw_encoding"] == "base64"
    assert base64.b64decode(record["raw"], validate=True) == raw


def test_a_tombstone_has_no_raw() -> None:
    record = letter(None, Rejection("empty_message", "the message has no value"))
    assert record["raw"] is None
    assert "raw_encoding" not in record
    assert original_bytes(record) is None


def test_partition_and_offset_may_be_unknown() -> None:
    record = letter(b"x", partition=None, offset=None)
    assert record["partition"] is None and record["offset"] is None


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1, "1970-01-01T00:00:00.001Z"),
        (999, "1970-01-01T00:00:00.999Z"),
        (RECEIVED_MS, "2026-11-22T10:15:30.123Z"),
        (7_258_118_399_999, "2199-12-31T23:59:59.999Z"),
    ],
)
def test_iso_ms(ms: int, text: str) -> None:
    assert iso_ms(ms) == text


@given(st.integers(0, 7_258_118_399_999))
def test_iso_ms_reads_back_through_the_contract(ms: int) -> None:
    assert parse_ts(iso_ms(ms)) == ms


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_any_bytes_survive_the_dead_letter_exactly(raw: bytes) -> None:
    record = letter(raw)
    assert original_bytes(record) == raw
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        assert record["raw_encoding"] == "base64"
    else:
        assert record["raw"] == text and "raw_encoding" not in record
    # The record itself is written with orjson and must read back unchanged.
    assert orjson.loads(orjson.dumps(record)) == record


@settings(max_examples=200)
@given(st.text(max_size=100).map(lambda s: s.encode("utf-8")))
def test_any_utf8_text_is_kept_as_text(raw: bytes) -> None:
    record = letter(raw)
    assert "raw_encoding" not in record
    assert record["raw"].encode("utf-8") == raw


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120) | st.text(max_size=60).map(str.encode), st.sampled_from(["clickstream", "pos"]))
def test_a_rejected_message_becomes_a_serializable_dead_letter(raw: bytes, topic: str) -> None:
    """End to end: whatever parse refuses, dead_letter records with the same code and exact bytes."""
    result = parse(raw, topic, max_bytes=100)
    if not isinstance(result, Rejection):
        return
    record = letter(raw, result, source_topic=topic)
    assert record["error"] == result.error and record["error"] in ERROR_CODES
    assert record["detail"] == result.detail
    assert original_bytes(record) == raw
    orjson.dumps(record)
