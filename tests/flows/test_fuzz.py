"""No input can stop or stall the flow: 20,000+ bad messages of every known kind through the
real flow and the real broker, interleaved with valid events.

Every bad message must come out on ``dead-letters`` with its reason code (matched by the
dead letter's ``raw_sha256``), every dead letter must fit the output limit, and the valid
events' outputs must be exactly those of a run without the bad messages.
"""

from __future__ import annotations

import base64
import hashlib
import random
import time
from collections import Counter
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from channelflow.broker import EmbeddedBroker
from channelflow.config import Config
from channelflow.kafka_io import Record, consume_all, event_record, produce
from tests.conftest import make_config
from tests.flow_harness import probe_spec, read_json, run_to_end, valid_event

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAY_MS = 86_400_000
MAX_OUTPUT_BYTES = 900_000  # the bundled ingest.max_output_bytes

Bad = tuple[str, bytes, str]  # (logical input topic, message bytes, expected reason code)


def _sale(n: int, ts: Any, **extra: Any) -> dict[str, Any]:
    return {"event_id": f"bad-{n}", "type": "sale", "ts": ts, "store_id": "S001", "receipt_id": f"r{n}",
            "loyalty_id": None, "lines": [{"sku": "SKU-1", "qty": 2, "unit_price": 4.5}], "total": 9.0, **extra}  # fmt: skip


def _nested(depth: int) -> bytes:
    """``depth`` levels of arrays and objects around 1, as JSON text (deeper than encoders go)."""
    opening = b"".join(b'{"n":' if level % 2 else b"[" for level in range(depth))
    closing = b"".join(b"}" if level % 2 else b"]" for level in reversed(range(depth)))
    return opening + b"1" + closing


def bad_messages(rng: random.Random, now: int, base: int) -> list[Bad]:
    """20,010 bad messages: every class of the contract's bounds and decoding errors."""
    bad: list[Bad] = []
    n = 0

    def add(topic: str, raw: bytes, code: str) -> None:
        bad.append((topic, raw, code))

    def sale(code: str, ts: Any = None, **extra: Any) -> None:
        nonlocal n
        n += 1
        add("pos", orjson.dumps(_sale(n, base if ts is None else ts, **extra)), code)

    # Oversized: 1,000,000 bytes (a dead letter of it would not fit in a Kafka message), 800 KB of
    # non-UTF-8 bytes, and a few hundred just over ingest.max_event_bytes.
    for i in range(6):
        head = orjson.dumps(_sale(10**6 + i, base))[:-1] + b', "pad": "'
        add("pos", head + b"x" * (1_000_000 - len(head) - 2) + b'"}', "oversize")
    for _ in range(4):
        add(rng.choice(["pos", "clickstream"]), b"\xff" + rng.randbytes(800_000), "oversize")
    for i in range(300):
        add("clickstream", b'{"event_id": "big-%d", "pad": "' % i + b"y" * rng.randint(65_600, 70_000) + b'"}', "oversize")
    # Unknown fields beyond ingest.max_unknown_bytes (16 KiB) in an otherwise valid event.
    for _ in range(500):
        sale("oversize", x_blob="z" * rng.randint(17_000, 30_000))
    # Not UTF-8 (small).
    for _ in range(3_000):
        raw = rng.randbytes(rng.randint(1, 200))
        add(rng.choice(["pos", "clickstream", "inventory", "customers"]), b'{"q": "\xc3\x28' + raw, "invalid_utf8")
    # Deep nesting in an unknown field: 600 levels (Bytewax's snapshot deepcopy overflowed), 33 levels
    # (just over the limit), and inside a line.
    for i in range(1_000):
        depth = 600 if i % 2 else 32  # 32 under the event object: 33 levels
        n += 1
        add("pos", orjson.dumps(_sale(n, base, x_deep="@"))[:-1].replace(b'"@"', _nested(depth)) + b"}", "too_deep")
    for _ in range(200):
        n += 1
        line = b'[{"sku":"SKU-1","qty":1,"unit_price":1,"x":' + _nested(40) + b"}]"
        add("pos", orjson.dumps(_sale(n, base, lines="@")).replace(b'"@"', line), "too_deep")
    # Huge integers: 2^64-1 decodes as an integer (a bound refuses it), 2^64 as a float (a type).
    for i in range(3_000):
        kind = i % 5
        if kind == 0:
            sale("out_of_range", lines=[{"sku": "SKU-1", "qty": 2**64 - 1, "unit_price": 4.5}])
        elif kind == 1:
            n += 1
            add("pos", orjson.dumps(_sale(n, base)).replace(b'"qty":2', b'"qty":18446744073709551616'), "wrong_type")
        elif kind == 2:
            n += 1
            body = {"event_id": f"bad-{n}", "type": "stock_adjusted", "ts": base, "location_id": "W001",
                    "sku": "SKU-1", "delta": -(2**63)}  # fmt: skip
            add("inventory", orjson.dumps(body), "out_of_range")
        elif kind == 3:
            sale("out_of_range", total=1e12)
        else:
            n += 1
            body = {"event_id": f"bad-{n}", "type": "stock_counted", "ts": base, "location_id": "W001",
                    "sku": "SKU-1", "on_hand": 10**18}  # fmt: skip
            add("inventory", orjson.dumps(body), "out_of_range")
    # Implausible event times: epoch seconds, the year 2199, a month after receipt, before 2000.
    for i in range(4_000):
        kind = i % 4
        ts = [now // 1000, 7_226_582_400_000 + i, now + 30 * DAY_MS + i, 946_684_799_999 - i][kind]
        sale("implausible_ts", ts=ts)
    # Bad JSON: cut short, NaN, nesting beyond orjson's own limit of 1024.
    for i in range(4_000):
        raw = orjson.dumps(_sale(10**7 + i, base))
        if i % 10 == 0:
            add("pos", raw.replace(b'"total":9.0', b'"total":NaN'), "invalid_json")
        elif i % 10 == 1:
            add("pos", b"[" * 1_100 + b"]" * 1_100, "invalid_json")
        else:
            add("pos", raw[: rng.randrange(1, len(raw) - 1)], "invalid_json")
    # Wrong types, and the rest of the codes.
    for i in range(4_000):
        kind = i % 6
        if kind == 0:
            sale("wrong_type", event_id=i)
        elif kind == 1:
            sale("wrong_type", lines=[{"sku": "SKU-1", "qty": "2", "unit_price": 4.5}])
        elif kind == 2:
            n += 1
            body = {"event_id": f"bad-{n}", "type": "consent_changed", "ts": base, "customer_id": "c1", "marketing": "yes"}
            add("customers", orjson.dumps(body), "wrong_type")
        elif kind == 3:
            add("clickstream", orjson.dumps([i, "not an object"]), "not_object")
        elif kind == 4:
            n += 1
            add("clickstream", orjson.dumps({"event_id": f"bad-{n}", "type": "teleport", "ts": base}), "unknown_type")
        else:
            n += 1
            body = {"event_id": f"bad-{n}", "type": "stock_received", "ts": base, "sku": "SKU-1", "qty": 1}
            add("inventory", orjson.dumps(body), "missing_field")
    return bad


def produce_all(bootstrap: str, records: list[Record]) -> None:
    """Produce with a message limit above 1 MB, so the largest bad messages reach the broker."""
    produce(bootstrap, records, message_max_bytes=2_000_000)


def interleave(rng: random.Random, first: list[Record], second: list[Record]) -> list[Record]:
    """``first`` and ``second`` merged at random, each in its own order."""
    picks = [0] * len(first) + [1] * len(second)
    rng.shuffle(picks)
    sources = [iter(first), iter(second)]
    return [next(sources[p]) for p in picks]


PROBE_DELAY_MS = 30_000


def run_probe(config: Config, records: list[Record], expect: int) -> list[bytes]:
    """The probe's records (one per event, one per timer fired) of a run over ``records``."""
    produce_all(config.kafka.bootstrap, records)
    run_to_end(config, [probe_spec(delay_ms=PROBE_DELAY_MS)])
    return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in read_json(config, "alerts", expect=expect))


def delivery_failures() -> float:
    return sum(
        sample.value
        for family in REGISTRY.collect()
        if family.name == "channelflow_delivery_failures"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def test_twenty_thousand_bad_messages_neither_stop_nor_change_the_flow(broker: EmbeddedBroker) -> None:
    rng = random.Random(11)
    now = time.time_ns() // 1_000_000
    base = (now - 2 * DAY_MS) // 60_000 * 60_000  # recent: inside min_event_time .. receipt + max_future
    events = [valid_event(i, base + i * 25) for i in range(2_000)]
    bad = bad_messages(rng, now, base)
    assert len(bad) >= 20_000
    assert {code for *_, code in bad} >= {"oversize", "invalid_utf8", "too_deep", "out_of_range", "wrong_type",
                                          "implausible_ts", "invalid_json"}  # fmt: skip

    # Each event gives a probe record; at the end of the input the watermark reaches the last
    # event time, so every timer due by then fires.
    last = max(e["ts"] for e in events)
    expect = len(events) + sum(1 for e in events if e["ts"] + PROBE_DELAY_MS <= last)
    clean = make_config(broker)
    expected_outputs = run_probe(clean, [event_record(e, clean.kafka.topics) for e in events], expect)
    assert len(expected_outputs) == expect > len(events)

    config = make_config(broker)
    topics = config.kafka.topics
    failures_before = delivery_failures()
    good = [event_record(e, topics) for e in events]
    bad_records = [(topics[topic], f"k{i % 50}".encode(), raw) for i, (topic, raw, _) in enumerate(bad)]
    outputs = run_probe(config, interleave(rng, good, bad_records), expect)

    assert outputs == expected_outputs
    letters = [orjson.loads(v) for _, v in consume_all(config.kafka.bootstrap, topics["dead_letters"],
                                                        expect=len(bad), timeout=120)]  # fmt: skip
    assert len(letters) == len(bad)
    expected = Counter((hashlib.sha256(raw).hexdigest(), code) for _, raw, code in bad)
    assert Counter((d["raw_sha256"], d["error"]) for d in letters) == expected
    for letter in letters:
        assert len(orjson.dumps(letter)) <= MAX_OUTPUT_BYTES
    truncated = [d for d in letters if d["truncated"]]
    assert len(truncated) == 10  # the 1,000,000-byte messages and the 800 KB of binary
    for letter in truncated:
        assert letter["raw_bytes"] in (1_000_000, 800_001)
        kept = base64.b64decode(letter["raw"]) if letter.get("raw_encoding") == "base64" else letter["raw"].encode()
        assert 500_000 < len(kept) < letter["raw_bytes"]
    assert delivery_failures() == failures_before


OUTPUT_TOPICS = ("inventory_updates", "customer_scores", "promotions", "alerts")


def outputs_written() -> dict[str, float]:
    """Records serialized so far by this process, by logical output topic (a metric)."""
    return {t: REGISTRY.get_sample_value("channelflow_output_records_total", {"topic": t}) or 0.0 for t in OUTPUT_TOPICS}


def run_domains(config: Config, records: list[Record]) -> dict[str, list[bytes]]:
    """Every output topic but dead-letters of a run of the real domains over ``records``."""
    produce_all(config.kafka.bootstrap, records)
    before = outputs_written()
    run_to_end(config)
    after = outputs_written()
    return {
        topic: sorted(
            orjson.dumps(r, option=orjson.OPT_SORT_KEYS)
            for r in read_json(config, topic, expect=int(after[topic] - before[topic]))
        )
        for topic in OUTPUT_TOPICS
    }


def test_the_domains_outputs_are_those_of_the_valid_events_alone(broker: EmbeddedBroker) -> None:
    """The real stages (inventory, customers, churn, anomalies, promotions) over valid events
    with and without the bad messages: the same records on every output topic."""
    rng = random.Random(12)
    now = time.time_ns() // 1_000_000
    base = (now - 2 * DAY_MS) // 60_000 * 60_000
    events = [valid_event(i, base + i * 250) for i in range(2_000)]
    clean = make_config(broker)
    expected = run_domains(clean, [event_record(e, clean.kafka.topics) for e in events])
    assert sum(len(records) for records in expected.values()) > 1_000

    config = make_config(broker)
    topics = config.kafka.topics
    bad = [(topics[topic], b"k", raw) for topic, raw, _ in bad_messages(rng, now, base)]
    assert run_domains(config, interleave(rng, [event_record(e, topics) for e in events], bad)) == expected
