"""The input contract (``operators.contract.events``) against the wire contract, version 1.

Every case names the rule of ``docs/contract.md`` it checks.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.contract.events import (
    ERROR_CODES,
    INPUT_TOPICS,
    TOPIC_OF_TYPE,
    TYPES_OF_TOPIC,
    Event,
    Rejection,
    parse,
    parse_ts,
    validate,
)
from operators.contract.money import from_millis, to_millis

Path = tuple[str | int, ...]

TS = "2026-11-22T10:15:30.123Z"
TS_MS = 1_795_342_530_123
MAX_TS_MS = 7_258_118_400_000  # 2200-01-01T00:00:00Z

_CLICK = {"ts": TS, "channel": "web", "session_id": "s1", "anonymous_id": "a1"}
_POS = {"ts": TS, "store_id": "S001", "receipt_id": "R1", "loyalty_id": None}
_LINE = {"sku": "SKU-1", "qty": 2, "unit_price": 9.99}

#: A minimal valid body of every event type (without ``event_id`` and ``type``).
MINIMAL: dict[str, dict[str, Any]] = {
    "page_view": {**_CLICK},
    "product_view": {**_CLICK, "sku": "SKU-1"},
    "search": {**_CLICK, "query": "mug"},
    "add_to_cart": {**_CLICK, "sku": "SKU-1", "qty": 1, "price": 9.99},
    "remove_from_cart": {**_CLICK, "sku": "SKU-1", "qty": 1},
    "checkout_started": {**_CLICK},
    "order_placed": {
        **_CLICK,
        "order_id": "O1",
        "lines": [_LINE],
        "total": 19.98,
        "fulfillment": {"method": "ship"},
    },
    "login": {**_CLICK, "customer_id": "C1"},
    "sale": {**_POS, "lines": [_LINE], "total": 19.98},
    "return": {**_POS, "lines": [_LINE]},
    "stock_received": {"ts": TS, "location_id": "W001", "sku": "SKU-1", "qty": 10},
    "stock_adjusted": {"ts": TS, "location_id": "W001", "sku": "SKU-1", "delta": -2},
    "stock_counted": {"ts": TS, "location_id": "W001", "sku": "SKU-1", "on_hand": 0},
    "transfer": {"ts": TS, "from_location_id": "W001", "to_location_id": "S001", "sku": "SKU-1", "qty": 3},
    "order_fulfilled": {"ts": TS, "order_id": "O1", "location_id": "W001"},
    "order_cancelled": {"ts": TS, "order_id": "O1"},
    "identity_linked": {"ts": TS, "customer_id": "C1", "loyalty_id": "L1"},
    "consent_changed": {"ts": TS, "customer_id": "C1", "marketing": True},
    "profile_updated": {"ts": TS, "customer_id": "C1"},
    "erasure_requested": {"ts": TS, "customer_id": "C1"},
}

#: The same types with every optional field filled in.
FULL: dict[str, dict[str, Any]] = {
    "page_view": {**_CLICK, "customer_id": "C1", "url": "https://shop.example/p/1"},
    "product_view": {**_CLICK, "customer_id": None, "sku": "SKU-1", "price": 12.5},
    "order_placed": {
        **MINIMAL["order_placed"],
        "coupon_code": "WELCOME10",
        "fulfillment": {"method": "pickup", "location_id": "S001"},
    },
    "sale": {
        **_POS,
        "loyalty_id": "L1",
        "lines": [{**_LINE, "discount": 1.005}],
        "total": 18.975,
        "coupon_code": "X",
    },
    "return": {
        **_POS,
        "lines": [{**_LINE, "restock": False}],
        "original_receipt_id": "R0",
        "original_order_id": "O0",
    },
    "stock_adjusted": {**MINIMAL["stock_adjusted"], "delta": 4, "reason": "found"},
    "identity_linked": {"ts": TS, "customer_id": "C1", "loyalty_id": "L1", "anonymous_id": "a1"},
    "consent_changed": {**MINIMAL["consent_changed"], "channels": ["email", "push", "sms"]},
    "profile_updated": {
        **MINIMAL["profile_updated"],
        "birthday": "1990-02-28",
        "timezone": "Europe/London",
        "home_store_id": "S001",
    },
}

#: Fields whose removal makes each type invalid (paths into the body).
REQUIRED: dict[str, list[Path]] = {
    "page_view": [],
    "product_view": [("sku",)],
    "search": [("query",)],
    "add_to_cart": [("sku",), ("qty",), ("price",)],
    "remove_from_cart": [("sku",), ("qty",)],
    "checkout_started": [],
    "order_placed": [
        ("order_id",),
        ("lines",),
        ("lines", 0, "sku"),
        ("lines", 0, "qty"),
        ("lines", 0, "unit_price"),
        ("total",),
        ("fulfillment",),
        ("fulfillment", "method"),
    ],
    "login": [("customer_id",)],
    "sale": [("lines",), ("lines", 0, "sku"), ("lines", 0, "qty"), ("lines", 0, "unit_price"), ("total",)],
    "return": [("lines",), ("lines", 0, "sku"), ("lines", 0, "qty"), ("lines", 0, "unit_price")],
    "stock_received": [("location_id",), ("sku",), ("qty",)],
    "stock_adjusted": [("location_id",), ("sku",), ("delta",)],
    "stock_counted": [("location_id",), ("sku",), ("on_hand",)],
    "transfer": [("from_location_id",), ("to_location_id",), ("sku",), ("qty",)],
    "order_fulfilled": [("order_id",), ("location_id",)],
    "order_cancelled": [("order_id",)],
    "identity_linked": [("customer_id",), ("loyalty_id",)],
    "consent_changed": [("customer_id",), ("marketing",)],
    "profile_updated": [("customer_id",)],
    "erasure_requested": [("customer_id",)],
}
_TOPIC_REQUIRED: dict[str, list[Path]] = {
    "clickstream": [("channel",), ("session_id",), ("anonymous_id",)],
    "pos": [("store_id",), ("receipt_id",)],
    "inventory": [],
    "customers": [],
}
_COMMON_REQUIRED: list[Path] = [("event_id",), ("type",), ("ts",)]


def body_of(event_type: str, *, full: bool = False, **fields: Any) -> dict[str, Any]:
    """A fresh valid body of ``event_type`` (optionally with every optional field), then ``fields``."""
    base = FULL.get(event_type, MINIMAL[event_type]) if full else MINIMAL[event_type]
    return {"event_id": f"ev-{event_type}", "type": event_type, **copy.deepcopy(base), **fields}


def check(body: Any, event_type: str) -> Event | Rejection:
    """Validate ``body`` against the topic of ``event_type``."""
    return validate(body, TOPIC_OF_TYPE[event_type])


def set_path(body: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    """A deep copy of ``body`` with ``path`` set to ``value``."""
    out = copy.deepcopy(body)
    node: Any = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


def drop_path(body: dict[str, Any], path: Path) -> dict[str, Any]:
    """A deep copy of ``body`` without ``path``."""
    out = copy.deepcopy(body)
    node: Any = out
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return out


def get_path(body: dict[str, Any], path: Path) -> Any:
    node: Any = body
    for part in path:
        node = node[part]
    return node


def dotted(path: Path) -> str:
    """``("lines", 0, "qty")`` -> ``lines[0].qty``, as the rejection details spell it."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def rejected(result: Event | Rejection, error: str) -> Rejection:
    """Assert ``result`` is a rejection with ``error`` and return it."""
    assert isinstance(result, Rejection), f"expected {error}, got a valid event"
    assert result.error == error, result
    assert result.detail
    return result


def _required_cases() -> list[tuple[str, Path]]:
    return [
        (t, path)
        for t in MINIMAL
        for path in _COMMON_REQUIRED + _TOPIC_REQUIRED[TOPIC_OF_TYPE[t]] + REQUIRED[t]
    ]


def _wrong_value(value: Any) -> Any:
    """A JSON value of another type than ``value`` (a string becomes a number, so not for ``ts``)."""
    if isinstance(value, bool):
        return 1
    if isinstance(value, (int, float)):
        return "1"
    if isinstance(value, str):
        return 123
    if isinstance(value, list):
        return {"0": value}
    return [value]


# -- valid events --------------------------------------------------------------


def test_every_type_of_every_topic_has_an_example() -> None:
    assert set(MINIMAL) == set(TOPIC_OF_TYPE)
    assert set(TYPES_OF_TOPIC) == set(INPUT_TOPICS)


@pytest.mark.parametrize("event_type", sorted(MINIMAL))
@pytest.mark.parametrize("full", [False, True], ids=["minimal", "full"])
def test_valid_example_passes(event_type: str, full: bool) -> None:
    body = body_of(event_type, full=full)
    result = parse(orjson.dumps(body), TOPIC_OF_TYPE[event_type])
    assert result == Event(f"ev-{event_type}", event_type, TOPIC_OF_TYPE[event_type], TS_MS, body)


@pytest.mark.parametrize("event_type", sorted(MINIMAL))
def test_unknown_fields_are_accepted_and_kept(event_type: str) -> None:
    body = body_of(event_type, full=True, x_new_field={"nested": [1, 2]}, schema_version=2)
    if "lines" in body:
        body["lines"][0]["x_line_note"] = "gift"
    if isinstance(body.get("fulfillment"), dict):
        body["fulfillment"]["x_slot"] = "am"
    result = check(body, event_type)
    assert isinstance(result, Event), result
    assert result.body["x_new_field"] == {"nested": [1, 2]}
    assert result.body == body


def test_nulls_are_absent_for_optional_fields() -> None:
    body = body_of(
        "profile_updated", birthday=None, timezone=None, home_store_id=None
    )
    assert isinstance(check(body, "profile_updated"), Event)
    body = body_of("product_view", price=None, customer_id=None)
    assert isinstance(check(body, "product_view"), Event)
    body = body_of("consent_changed", channels=None)
    assert isinstance(check(body, "consent_changed"), Event)


# -- missing and wrongly typed fields ------------------------------------------


@pytest.mark.parametrize(("event_type", "path"), _required_cases(), ids=lambda v: dotted(v) if isinstance(v, tuple) else v)
def test_removing_a_required_field_is_missing_field(event_type: str, path: Path) -> None:
    body = drop_path(body_of(event_type), path)
    result = rejected(check(body, event_type), "missing_field")
    assert f"'{dotted(path)}" in result.detail


@pytest.mark.parametrize(("event_type", "path"), _required_cases(), ids=lambda v: dotted(v) if isinstance(v, tuple) else v)
def test_a_required_field_of_the_wrong_type_is_wrong_type(event_type: str, path: Path) -> None:
    body = body_of(event_type)
    value = get_path(body, path)
    wrong = set_path(body, path, [value] if path == ("ts",) else _wrong_value(value))
    result = rejected(check(wrong, event_type), "wrong_type")
    assert f"'{dotted(path)}" in result.detail


@pytest.mark.parametrize(
    ("event_type", "path"),
    [c for c in _required_cases() if c != ("identity_linked", ("loyalty_id",))],
    ids=lambda v: dotted(v) if isinstance(v, tuple) else v,
)
def test_null_in_a_required_field_is_wrong_type(event_type: str, path: Path) -> None:
    result = rejected(check(set_path(body_of(event_type), path, None), event_type), "wrong_type")
    assert "null" in result.detail


@pytest.mark.parametrize(
    ("event_type", "path"),
    [
        ("page_view", ("url",)),
        ("product_view", ("price",)),
        ("product_view", ("customer_id",)),
        ("order_placed", ("coupon_code",)),
        ("sale", ("loyalty_id",)),
        ("sale", ("lines", 0, "discount")),
        ("return", ("lines", 0, "restock")),
        ("return", ("original_receipt_id",)),
        ("return", ("original_order_id",)),
        ("stock_adjusted", ("reason",)),
        ("identity_linked", ("anonymous_id",)),
        ("consent_changed", ("channels",)),
        ("profile_updated", ("birthday",)),
        ("profile_updated", ("timezone",)),
        ("profile_updated", ("home_store_id",)),
    ],
    ids=lambda v: dotted(v) if isinstance(v, tuple) else v,
)
def test_an_optional_field_of_the_wrong_type_is_wrong_type(event_type: str, path: Path) -> None:
    body = body_of(event_type, full=True)
    wrong = set_path(body, path, _wrong_value(get_path(body, path)))
    assert f"'{dotted(path)}" in rejected(check(wrong, event_type), "wrong_type").detail


@pytest.mark.parametrize(
    ("event_type", "path", "value"),
    [
        ("add_to_cart", ("qty",), True),
        ("remove_from_cart", ("qty",), False),
        ("stock_received", ("qty",), True),
        ("transfer", ("qty",), True),
        ("stock_adjusted", ("delta",), True),
        ("stock_counted", ("on_hand",), False),
        ("sale", ("lines", 0, "qty"), True),
        ("add_to_cart", ("price",), True),
        ("sale", ("total",), False),
        ("order_placed", ("lines", 0, "unit_price"), True),
        ("page_view", ("ts",), True),
        ("add_to_cart", ("qty",), 1.0),
        ("stock_counted", ("on_hand",), 2.5),
        ("consent_changed", ("marketing",), 1),
        ("consent_changed", ("marketing",), "true"),
        ("return", ("lines", 0, "restock"), 0),
        ("page_view", ("ts",), 1_795_342_530_123.0),
        ("sale", ("lines", 0), "SKU-1"),
        ("order_placed", ("fulfillment",), "ship"),
        ("page_view", ("type",), 7),
    ],
    ids=str,
)
def test_bool_and_float_are_not_integers(event_type: str, path: Path, value: Any) -> None:
    rejected(check(set_path(body_of(event_type), path, value), event_type), "wrong_type")


# -- bounds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "path", "value"),
    [
        ("add_to_cart", ("qty",), 0),
        ("remove_from_cart", ("qty",), 0),
        ("stock_received", ("qty",), 0),
        ("transfer", ("qty",), -1),
        ("sale", ("lines", 0, "qty"), 0),
        ("add_to_cart", ("price",), -0.01),
        ("product_view", ("price",), -1),
        ("sale", ("total",), -5),
        ("sale", ("lines", 0, "unit_price"), -0.5),
        ("sale", ("lines", 0, "discount"), -1),
        ("order_placed", ("total",), 1.2345),  # more than 3 decimals
        ("add_to_cart", ("price",), 1e9),  # implausibly large
        ("add_to_cart", ("qty",), 1_000_001),
        ("add_to_cart", ("qty",), 2**64 - 1),  # decodes as an integer: a bound, not a type, refuses it
        ("sale", ("lines", 0, "qty"), 2**64 - 1),
        ("sale", ("lines", 0, "unit_price"), 1e9),
        ("stock_received", ("qty",), 10**6 + 1),
        ("transfer", ("qty",), 10**6 + 1),
        ("remove_from_cart", ("qty",), 10**6 + 1),
        ("stock_adjusted", ("delta",), 10**9 + 1),
        ("stock_adjusted", ("delta",), -(10**9) - 1),
        ("stock_adjusted", ("delta",), -(2**63)),
        ("stock_counted", ("on_hand",), 10**9 + 1),
        ("stock_adjusted", ("delta",), 0),
        ("stock_counted", ("on_hand",), -1),
        ("page_view", ("event_id",), "e" * 129),
        ("page_view", ("event_id",), ""),
        ("search", ("query",), "q" * 1025),
        ("page_view", ("url",), "u" * 4097),
        ("product_view", ("sku",), ""),
        ("product_view", ("sku",), "s" * 257),
        ("order_placed", ("lines",), []),
        ("return", ("lines",), [_LINE] * 1001),
        ("page_view", ("ts",), -1),
        ("page_view", ("ts",), MAX_TS_MS),
        ("page_view", ("ts",), "1969-12-31T23:59:59.999Z"),
        ("page_view", ("ts",), "2200-01-01T00:00:00Z"),
        ("page_view", ("ts",), "0001-01-01T00:00:00+01:00"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_values_out_of_bounds_are_out_of_range(event_type: str, path: Path, value: Any) -> None:
    body = body_of(event_type, full=True)
    assert f"'{dotted(path)}" in rejected(check(set_path(body, path, value), event_type), "out_of_range").detail


@pytest.mark.parametrize(
    ("event_type", "path", "value"),
    [
        ("add_to_cart", ("qty",), 1),
        ("stock_counted", ("on_hand",), 0),
        ("stock_adjusted", ("delta",), -1),
        ("add_to_cart", ("price",), 0),
        ("product_view", ("price",), 999_999_999.999),
        ("remove_from_cart", ("qty",), 1_000_000),
        ("stock_received", ("qty",), 1_000_000),
        ("stock_adjusted", ("delta",), 10**9),
        ("stock_adjusted", ("delta",), -(10**9)),
        ("stock_counted", ("on_hand",), 10**9),
        ("sale", ("total",), 0.001),
        ("page_view", ("event_id",), "e" * 128),
        ("page_view", ("event_id",), "é" * 128),  # characters, not bytes
        ("page_view", ("ts",), 0),
        ("page_view", ("ts",), MAX_TS_MS - 1),
        ("return", ("lines",), [_LINE] * 1000),
    ],
    ids=lambda v: str(v)[:30],
)
def test_values_at_the_bounds_are_accepted(event_type: str, path: Path, value: Any) -> None:
    result = check(set_path(body_of(event_type, full=True), path, value), event_type)
    assert isinstance(result, Event), result


# -- invalid values ------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "path", "value"),
    [
        ("page_view", ("ts",), "2026-11-22T10:15:30"),  # no offset
        ("page_view", ("ts",), "2026-11-22"),  # date only
        ("page_view", ("ts",), "2026-11-22Z"),
        ("page_view", ("ts",), "yesterday"),
        ("page_view", ("ts",), "2026-02-30T10:15:30Z"),
        ("page_view", ("ts",), "2026-11-22T24:00:00Z"),
        ("page_view", ("ts",), "1795342530123"),  # epoch ms must be a number
        ("page_view", ("channel",), "email"),
        ("page_view", ("channel",), "Web"),
        ("order_placed", ("fulfillment", "method"), "courier"),
        ("profile_updated", ("birthday",), "1990-02-30"),
        ("profile_updated", ("birthday",), "28/02/1990"),
        ("profile_updated", ("birthday",), "1990-2-28"),
        ("profile_updated", ("birthday",), "1990-02-28T00:00:00Z"),
        ("profile_updated", ("birthday",), "1990-02-28\n"),
        ("profile_updated", ("birthday",), "\uff11\uff19\uff19\uff10-02-28"),  # fullwidth digits
        ("page_view", ("ts",), "2026-11-22T10:15:30Z\n"),
        ("page_view", ("ts",), "\u0662\u0660\u0662\u0666-11-22T10:15:30Z"),  # Arabic-Indic digits
        ("profile_updated", ("timezone",), "Mars/Olympus_Mons"),
        ("profile_updated", ("timezone",), "europe/london"),
        ("profile_updated", ("timezone",), "../../etc/passwd"),
        ("transfer", ("to_location_id",), "W001"),  # same as from_location_id
        ("consent_changed", ("channels",), ["email", "fax"]),
        # An account id that reads as a device's or a card's key would be taken for one.
        ("page_view", ("customer_id",), "device:acct1"),
        ("login", ("customer_id",), "loyalty:L1"),
        ("order_placed", ("customer_id",), "device:"),
        ("erasure_requested", ("customer_id",), "loyalty:x"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_right_type_wrong_form_is_invalid_value(event_type: str, path: Path, value: Any) -> None:
    body = body_of(event_type, full=True)
    result = rejected(check(set_path(body, path, value), event_type), "invalid_value")
    assert dotted(path).split(".")[-1].split("[")[0] in result.detail


# -- conditional requirements ------------------------------------------------------


def test_pickup_needs_a_location_id() -> None:
    body = body_of("order_placed", fulfillment={"method": "pickup"})
    result = rejected(check(body, "order_placed"), "missing_field")
    assert "fulfillment.location_id" in result.detail
    ship = body_of("order_placed", fulfillment={"method": "ship"})
    assert isinstance(check(ship, "order_placed"), Event)


@pytest.mark.parametrize("event_type", sorted(TYPES_OF_TOPIC["clickstream"]))
def test_clickstream_anonymous_id_required_unless_customer_id(event_type: str) -> None:
    anonymous_only = body_of(event_type)
    assert isinstance(check(anonymous_only, event_type), Event)
    neither = drop_path(anonymous_only, ("anonymous_id",))
    neither.pop("customer_id", None)
    rejected(check(neither, event_type), "missing_field")
    rejected(check({**neither, "customer_id": None}, event_type), "missing_field")
    if event_type != "login":
        assert isinstance(check({**neither, "customer_id": "C1"}, event_type), Event)
        assert isinstance(check({**neither, "customer_id": "C1", "anonymous_id": None}, event_type), Event)


@pytest.mark.parametrize("drop", ["anonymous_id", "customer_id"])
def test_login_requires_both_ids(drop: str) -> None:
    body = drop_path(body_of("login"), (drop,))
    assert f"'{drop}'" in rejected(check(body, "login"), "missing_field").detail
    rejected(check({**body, drop: None}, "login"), "wrong_type")


@pytest.mark.parametrize(
    ("links", "valid"),
    [
        ({"loyalty_id": "L1"}, True),
        ({"anonymous_id": "a1"}, True),
        ({"loyalty_id": "L1", "anonymous_id": "a1"}, True),
        ({"loyalty_id": None, "anonymous_id": "a1"}, True),
        ({}, False),
        ({"loyalty_id": None, "anonymous_id": None}, False),
    ],
    ids=str,
)
def test_identity_linked_needs_loyalty_or_anonymous_id(links: dict[str, Any], valid: bool) -> None:
    body = {"event_id": "e1", "type": "identity_linked", "ts": 0, "customer_id": "C1", **links}
    result = validate(body, "customers")
    if valid:
        assert isinstance(result, Event), result
    else:
        assert "loyalty_id" in rejected(result, "missing_field").detail


# -- types and topics ------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "event_type"),
    [(topic, t) for topic in INPUT_TOPICS for t in sorted(TOPIC_OF_TYPE) if TOPIC_OF_TYPE[t] != topic]
    + [(topic, "no_such_type") for topic in INPUT_TOPICS],
)
def test_a_type_of_another_topic_is_unknown_type(topic: str, event_type: str) -> None:
    body = body_of(event_type) if event_type in MINIMAL else {"event_id": "e", "type": event_type, "ts": 0}
    result = rejected(validate(body, topic), "unknown_type")
    assert repr(event_type) in result.detail


def test_an_unknown_logical_topic_is_unknown_topic() -> None:
    rejected(validate(body_of("page_view"), "orders"), "unknown_topic")
    rejected(parse(orjson.dumps(body_of("page_view")), ""), "unknown_topic")


def test_common_fields_are_checked_in_order() -> None:
    """event_id, then type, then ts: the first problem is the one reported."""
    result = rejected(validate({"type": "nope", "ts": "never"}, "pos"), "missing_field")
    assert "'event_id'" in result.detail
    result = rejected(validate({"event_id": "e", "type": "nope", "ts": "never"}, "pos"), "unknown_type")
    assert "'nope'" in result.detail


# -- event time --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (TS_MS, TS_MS),
        ("2026-11-22T10:15:30.123Z", TS_MS),
        ("2026-11-22T10:15:30.123z", TS_MS),
        ("2026-11-22t10:15:30.123Z", TS_MS),
        ("2026-11-22T10:15:30.123+00:00", TS_MS),
        ("2026-11-22T11:15:30.123+01:00", TS_MS),
        ("2026-11-22T05:15:30.123-05:00", TS_MS),
        ("2026-11-23T00:00:30.123+13:45", TS_MS),
        ("2026-11-22T10:15:30Z", TS_MS - 123),
        ("2026-11-22T10:15:30.1Z", TS_MS - 23),
        ("2026-11-22T10:15:30.123456Z", TS_MS),
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T01:00:00+01:00", 0),
    ],
    ids=str,
)
def test_ts_forms_give_epoch_ms(value: str | int, expected: int) -> None:
    assert parse_ts(value) == expected
    event = check(body_of("page_view", ts=value), "page_view")
    assert isinstance(event, Event) and event.ts == expected


@given(
    st.integers(0, MAX_TS_MS - 1),
    st.integers(-23 * 60, 23 * 60 + 59).map(lambda m: timedelta(minutes=m)),
)
def test_rfc3339_with_any_offset_matches_epoch_ms(ms: int, offset: timedelta) -> None:
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)
    text = moment.astimezone(timezone(offset)).isoformat(timespec="milliseconds")
    assert parse_ts(text) == ms
    assert parse_ts(text.replace("+00:00", "Z")) == ms




@pytest.mark.parametrize(
    "value",
    [
        pytest.param("2026-11-22T10:15Z", id="no-seconds"),
        pytest.param("2026-11-22T10Z", id="hour-only"),
        pytest.param("20261122T101530Z", id="basic-format"),
        pytest.param("2026-W47-7T10:15:30Z", id="week-date"),
        pytest.param("2026-11-22T10:15:30,123Z", id="comma-fraction"),
        pytest.param("2026-11-22T10:15:30+0100", id="offset-without-colon"),
        pytest.param("2026-11-22T10:15:30+01", id="offset-hours-only"),
    ],
)
def test_iso8601_forms_outside_rfc3339_are_invalid_value(value: str) -> None:
    rejected(check(body_of("page_view", ts=value), "page_view"), "invalid_value")


# -- message level -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (None, "empty_message"),
        (b"", "empty_message"),
        (b'{"a": "\xff"}', "invalid_utf8"),
        (b"\xc3\x28", "invalid_utf8"),
        (b'{"a": "\xed\xa0\x80"}', "invalid_utf8"),  # an encoded surrogate is not UTF-8
        (b'{"event_id": "e1"', "invalid_json"),
        (b"   ", "invalid_json"),
        (b"{'a': 1}", "invalid_json"),
        (b'{"a": NaN}', "invalid_json"),
        (b'{"a": 1e400}', "invalid_json"),
        (b'{"a": "\\ud800"}', "invalid_json"),  # an escaped lone surrogate
        (b"[" * 2000, "invalid_json"),
        (b"[]", "not_object"),
        (b'"event"', "not_object"),
        (b"42", "not_object"),
        (b"null", "not_object"),
        (b"true", "not_object"),
    ],
    ids=repr,
)
def test_undecodable_messages(raw: bytes | None, error: str) -> None:
    result = parse(raw, "clickstream")
    assert isinstance(result, Rejection) and result.error == error, result


def test_a_byte_order_mark_is_invalid_json_not_invalid_utf8() -> None:
    raw = b"\xef\xbb\xbf" + orjson.dumps(body_of("page_view"))
    raw.decode("utf-8")  # valid UTF-8
    assert rejected(parse(raw, "clickstream"), "invalid_json")


def test_oversize_is_checked_on_bytes_before_decoding() -> None:
    raw = orjson.dumps(body_of("search", query="m" * 200))
    assert isinstance(parse(raw, "clickstream", max_bytes=len(raw)), Event)
    result = rejected(parse(raw, "clickstream", max_bytes=len(raw) - 1), "oversize")
    assert str(len(raw)) in result.detail
    rejected(parse(b"\xff" * 70_000, "clickstream"), "oversize")  # default limit 65536


def test_parse_accepts_bytearray_and_memoryview() -> None:
    raw = orjson.dumps(body_of("order_cancelled"))
    assert isinstance(parse(bytearray(raw), "inventory"), Event)
    assert isinstance(parse(memoryview(raw), "inventory"), Event)


def test_validate_rejects_non_objects() -> None:
    for value in (None, [], "x", 1, 1.5, True):
        rejected(validate(value, "pos"), "not_object")


# -- property tests ------------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
    | st.sampled_from(["", "web", "pickup", "ship", TS, "Europe/London", "2000-01-01", "email"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=16,
)
topics = st.sampled_from([*INPUT_TOPICS, "other"])


def assert_outcome(result: object) -> None:
    assert isinstance(result, (Event, Rejection))
    if isinstance(result, Rejection):
        assert result.error in ERROR_CODES
        assert isinstance(result.detail, str) and result.detail


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), topics, st.integers(1, 256))
def test_parse_never_raises_on_bytes(raw: bytes, topic: str, max_bytes: int) -> None:
    assert_outcome(parse(raw, topic, max_bytes=max_bytes))


@settings(max_examples=300, deadline=None)
@given(json_values, topics)
def test_parse_never_raises_on_json_values(value: Any, topic: str) -> None:
    assert_outcome(parse(orjson.dumps(value), topic))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(MINIMAL)), st.booleans(), st.data())
def test_parse_never_raises_on_mutated_valid_events(event_type: str, full: bool, data: st.DataObject) -> None:
    """Replace or drop one field (top level or nested) of a valid event with any JSON value."""
    body = body_of(event_type, full=full)
    paths: list[Path] = [(k,) for k in body]
    paths += [("lines", 0, k) for k in body.get("lines", [{}])[0]]
    paths += [("fulfillment", k) for k in body.get("fulfillment", {})]
    path = data.draw(st.sampled_from(paths))
    if data.draw(st.booleans()):
        mutated = drop_path(body, path)
    else:
        mutated = set_path(body, path, data.draw(json_values))
    assert_outcome(parse(orjson.dumps(mutated), TOPIC_OF_TYPE[event_type]))


@st.composite
def valid_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid body of any type with drawn ids, ts, quantities, money and extra fields."""
    event_type = draw(st.sampled_from(sorted(MINIMAL)))
    body = body_of(event_type, full=draw(st.booleans()))
    body["event_id"] = draw(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=128))
    body["ts"] = draw(
        st.integers(0, MAX_TS_MS - 1)
        | st.integers(0, MAX_TS_MS - 1).map(
            lambda ms: (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)).isoformat(
                timespec="milliseconds"
            )
        )
    )
    money = st.integers(0, 10**9).map(lambda m: m / 1000) | st.integers(0, 10**6)
    for key in ("qty",):
        if key in body:
            body[key] = draw(st.integers(1, 10**6))
    for key in ("price", "total"):
        if key in body:
            body[key] = draw(money)
    if body.get("qty", 0) * body.get("price", 0) >= 10**9:  # qty x price is bounded too
        body["price"] = 0.5
    for line in body.get("lines", []):
        line["qty"] = draw(st.integers(1, 999))
        line["unit_price"] = draw(money)
    extra = draw(st.dictionaries(st.text(max_size=8).map(lambda k: f"x_{k}"), json_values, max_size=3))
    body.update(extra)
    return body


@settings(max_examples=300, deadline=None)
@given(valid_bodies())
def test_a_valid_event_round_trips_through_orjson(body: dict[str, Any]) -> None:
    event_type = body["type"]
    topic = TOPIC_OF_TYPE[event_type]
    first = parse(orjson.dumps(body), topic)
    assert isinstance(first, Event), first
    assert first == Event(body["event_id"], event_type, topic, parse_ts(body["ts"]), body)
    assert parse(orjson.dumps(first.body), topic) == first


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**13), 10**13))
def test_every_accepted_amount_is_exact_in_milli_units(amount: float) -> None:
    """Money the contract accepts converts to integer milli-units without loss."""
    result = check(body_of("add_to_cart", price=amount), "add_to_cart")
    if isinstance(result, Event):
        millis = to_millis(amount)
        assert isinstance(millis, int) and 0 <= millis < 10**15
        assert from_millis(millis) == amount
    else:
        assert result.error == "out_of_range"


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=50))
def test_amounts_with_three_decimals_sum_exactly(millis: list[int]) -> None:
    amounts = [m / 1000 for m in millis]
    for amount in amounts:
        assert isinstance(check(body_of("add_to_cart", price=amount), "add_to_cart"), Event)
    assert sum(to_millis(a) for a in amounts) == sum(millis)


# -- divergences found and fixed ----------------------------------------------------------


@pytest.mark.parametrize("entry", [1, None, ["email"]], ids=repr)
def test_a_non_string_consent_channel_is_wrong_type(entry: Any) -> None:
    body = body_of("consent_changed", channels=["email", entry])
    rejected(check(body, "consent_changed"), "wrong_type")


@pytest.mark.parametrize("name", ["localtime", "right/Europe/London"])
def test_non_iana_zoneinfo_entries_are_invalid_value(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ValueError, OSError, KeyError):
        pytest.skip(f"this host has no zoneinfo entry {name!r}: nothing to show")
    rejected(check(body_of("profile_updated", timezone=name), "profile_updated"), "invalid_value")
