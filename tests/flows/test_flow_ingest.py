"""The real flow against the real broker: dead letters, duplicates, the watermark and its timers."""

from __future__ import annotations

import random
from collections import Counter

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channelflow.broker import EmbeddedBroker
from tests.conftest import make_config
from tests.flow_harness import (
    T0,
    metric,
    probe_spec,
    produce_events,
    read_json,
    run_to_end,
    valid_event,
)

pytestmark = pytest.mark.integration

BAD_MESSAGES: list[tuple[str, bytes | None, str]] = [
    ("clickstream", b"{not json", "invalid_json"),
    ("clickstream", b"\xff\xfe\x00garbage", "invalid_utf8"),
    ("pos", b"[1, 2, 3]", "not_object"),
    ("pos", b'{"event_id": "x1", "type": "sale", "ts": 0, "store_id": "S1", "receipt_id": "r",'
            b' "lines": [{"sku": "A", "qty": -2, "unit_price": 1}], "total": 1}', "out_of_range"),
    ("inventory", b'{"event_id": "x2", "type": "stock_received", "ts": 0, "sku": "A", "qty": 1}', "missing_field"),
    ("inventory", b'{"event_id": "x3", "type": "stock_received", "ts": "yesterday", "location_id": "W1",'
                  b' "sku": "A", "qty": 1}', "invalid_value"),
    ("customers", b'{"event_id": "x4", "type": "consent_changed", "ts": 0, "customer_id": "c",'
                  b' "marketing": "yes"}', "wrong_type"),
    ("customers", b'{"event_id": "x5", "type": "teleported", "ts": 0}', "unknown_type"),
    ("customers", b'{"event_id": "x7", "type": "consent_changed", "ts": 0, "customer_id": "device:acct1",'
                  b' "marketing": true}', "invalid_value"),  # an account id that reads as a device's key
    ("clickstream", b"", "empty_message"),
    ("pos", b'{"event_id": "x6", "pad": "' + b"x" * 70_000 + b'"}', "oversize"),
]


def test_dead_letters_and_duplicates_are_counted_exactly(broker: EmbeddedBroker) -> None:
    config = make_config(broker)
    events = [valid_event(i, T0 + i * 10) for i in range(2_000)]
    repeats = [events[i] for i in range(0, 2_000, 20)]  # 100 redeliveries, soon after the original
    log = events[:1_000] + repeats[:50] + events[1_000:] + repeats[50:]
    topics = config.kafka.topics
    bad = [(topics[topic], b"k", raw) for topic, raw, _ in BAD_MESSAGES]
    duplicates_before = sum(metric("channelflow_duplicates_total", topic=t) for t in topics)

    produce_events(config, log, bad)
    run_to_end(config, [probe_spec(delay_ms=60_000)])

    letters = read_json(config, "dead_letters", expect=len(BAD_MESSAGES))
    assert Counter(d["error"] for d in letters) == Counter(code for *_, code in BAD_MESSAGES)
    for letter in letters:
        assert letter["detail"] and letter["source_topic"] in topics and letter["offset"] is not None
    garbage = next(d for d in letters if d["error"] == "invalid_utf8")
    assert garbage["raw_encoding"] == "base64"
    seen = [r for r in read_json(config, "alerts") if r["kind"] == "event"]
    assert sorted(r["event_id"] for r in seen) == sorted(e["event_id"] for e in events)
    duplicates = sum(metric("channelflow_duplicates_total", topic=t) for t in topics) - duplicates_before
    assert duplicates == len(repeats)


def test_timers_fire_on_the_watermark_for_keys_that_never_return(broker: EmbeddedBroker) -> None:
    # 1 s lateness, one probe timer 5 s after every event; one partition per
    # topic, so that no partition stays empty (the watermark waits for every
    # partition until the idle timeout).
    config = make_config(broker, partitions=1, TIME__ALLOWED_LATENESS="1s")
    events = [valid_event(i, T0 + i * 100) for i in range(600)]  # 60 s of event time
    produce_events(config, events)
    run_to_end(config, [probe_spec(delay_ms=5_000)])

    timers = [r for r in read_json(config, "alerts") if r["kind"] == "timer"]
    # At the end of the input the watermark passes the latest event read, so
    # every timer due by the last event time fires; later ones stay pending.
    final_watermark = max(r["watermark"] for r in timers)
    assert final_watermark == events[-1]["ts"] + 1
    due = {e["event_id"] for e in events if e["ts"] + 5_000 <= events[-1]["ts"]}
    assert {r["event_id"] for r in timers} == due
    assert len(timers) == len(due)  # each exactly once
    assert all(r["deadline"] < r["watermark"] for r in timers)
    assert len(due) > 500


def test_outputs_do_not_depend_on_batching(broker: EmbeddedBroker) -> None:
    """Small batches move the watermark in many small steps; big ones in few: same outputs."""
    rng = random.Random(3)
    events = [valid_event(i, T0 + i * 50 + rng.randint(0, 400)) for i in range(800)]
    results = []
    for batch_size in ("1", "1000"):
        config = make_config(
            broker, partitions=1, TIME__ALLOWED_LATENESS="2s", KAFKA__BATCH_SIZE=batch_size
        )
        produce_events(config, events)
        run_to_end(config, [probe_spec(delay_ms=3_000)])
        timers = sorted((r["event_id"], r["deadline"]) for r in read_json(config, "alerts") if r["kind"] == "timer")
        results.append(timers)
    assert results[0] == results[1]
    assert len(results[0]) > 650


def _mutations(event: dict[str, object], rng: random.Random) -> tuple[bytes, str]:
    """One invalid variant of a valid event, with the reason code it must get."""
    mutated = dict(event)
    choice = rng.randrange(6)
    if choice == 0:
        del mutated["event_id"]
        return orjson.dumps(mutated), "missing_field"
    if choice == 1:
        mutated["ts"] = "not a time"
        return orjson.dumps(mutated), "invalid_value"
    if choice == 2:
        mutated["type"] = "nonsense"
        return orjson.dumps(mutated), "unknown_type"
    if choice == 3:
        mutated["event_id"] = 12345
        return orjson.dumps(mutated), "wrong_type"
    if choice == 4:
        mutated["event_id"] = "x" * 200
        return orjson.dumps(mutated), "out_of_range"
    raw = orjson.dumps(mutated)
    return raw[: rng.randrange(1, len(raw) - 1)], "invalid_json"


@pytest.mark.slow
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(junk=st.lists(st.binary(min_size=1, max_size=300), min_size=500, max_size=800), seed=st.integers(0, 10**6))
def test_fuzz_through_the_real_flow(broker: EmbeddedBroker, junk: list[bytes], seed: int) -> None:
    """Thousands of random byte strings and mutated events: no crash, every bad one dead-lettered."""
    config = make_config(broker)
    rng = random.Random(seed)
    topics = list(config.kafka.input_topics)
    good = [valid_event(i, T0 + i) for i in range(300)]
    mutated = [_mutations(valid_event(10_000 + i, T0 + i), rng) for i in range(500)]
    records = [(rng.choice(topics), None, raw) for raw in junk]
    records += [(config.kafka.topics[_topic_of(raw)], None, raw) for raw, _ in mutated]
    produce_events(config, good, records)
    run_to_end(config, [probe_spec(delay_ms=10**9)])

    letters = read_json(config, "dead_letters", expect=len(records))
    assert len(letters) == len(records)
    expected_raw = Counter(_as_text(raw) for _, _, raw in records)
    assert Counter(_letter_raw(d) for d in letters) == expected_raw
    by_raw = {_as_text(raw): code for raw, code in mutated}
    for letter in letters:
        code = by_raw.get(_letter_raw(letter))
        if code is not None:
            assert letter["error"] == code, letter
    seen = {r["event_id"] for r in read_json(config, "alerts") if r["kind"] == "event"}
    assert seen == {e["event_id"] for e in good}


def _topic_of(raw: bytes) -> str:
    if b'"sale"' in raw:
        return "pos"
    if b'"stock_received"' in raw:
        return "inventory"
    if b'"consent_changed"' in raw:
        return "customers"
    return "clickstream"


def _as_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        import base64

        return "b64:" + base64.b64encode(raw).decode()


def _letter_raw(letter: dict[str, object]) -> str:
    raw = str(letter["raw"])
    return "b64:" + raw if letter.get("raw_encoding") == "base64" else raw

