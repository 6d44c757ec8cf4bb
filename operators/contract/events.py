"""The input event contract, version 1: decode and validate one message.

Every input message is one UTF-8 JSON object. :func:`parse` turns raw bytes
into an :class:`Event` or a :class:`Rejection` carrying a stable reason code;
it never raises on input bytes. The rules are those of ``docs/contract.md``.

>>> ev = parse(b'{"event_id": "e1", "type": "search", "ts": 0, "channel": "web",'
...            b' "session_id": "s1", "anonymous_id": "a1", "query": "mug"}', "clickstream")
>>> ev.type, ev.ts
('search', 0)
>>> parse(b'{"event_id": "e2"', "clickstream").error
'invalid_json'
>>> parse(b'{"event_id": "e3", "type": "sale", "ts": 0}', "clickstream").error
'unknown_type'
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

import orjson

from operators.records import fast_init
from operators.state.pickling import pickled_as_call

__all__ = [
    "ALIAS_PREFIXES",
    "DEVICE_PREFIX",
    "ERROR_CODES",
    "INPUT_TOPICS",
    "LOYALTY_PREFIX",
    "MAX_DEPTH",
    "MAX_QTY",
    "MAX_STOCK",
    "MONEY_LIMIT",
    "TOPIC_OF_TYPE",
    "TYPES_OF_TOPIC",
    "Event",
    "Limits",
    "Rejection",
    "parse",
    "parse_ts",
    "partition_key",
    "topic_for_type",
    "validate",
]

INPUT_TOPICS = ("clickstream", "pos", "inventory", "customers")

TYPES_OF_TOPIC: dict[str, tuple[str, ...]] = {
    "clickstream": (
        "page_view",
        "product_view",
        "search",
        "add_to_cart",
        "remove_from_cart",
        "checkout_started",
        "order_placed",
        "login",
    ),
    "pos": ("sale", "return"),
    "inventory": (
        "stock_received",
        "stock_adjusted",
        "stock_counted",
        "transfer",
        "order_fulfilled",
        "order_cancelled",
    ),
    "customers": ("identity_linked", "consent_changed", "profile_updated", "erasure_requested"),
}
TOPIC_OF_TYPE = {t: topic for topic, types in TYPES_OF_TOPIC.items() for t in types}

#: Stable reason codes of a rejected message (the ``error`` of a dead letter).
ERROR_CODES = (
    "empty_message",  # a Kafka record with no value (tombstone)
    "oversize",  # larger than ingest.max_event_bytes, or unknown fields over ingest.max_unknown_bytes
    "invalid_utf8",
    "invalid_json",
    "not_object",  # valid JSON, but not an object
    "missing_field",
    "wrong_type",
    "unknown_type",
    "out_of_range",  # a number or string length outside its bounds
    "invalid_value",  # right type, wrong form: timestamp, date, enum, time zone
    "kafka_error",  # the consumer reported an error for this message
    "unknown_topic",
    "too_deep",  # objects and arrays nested deeper than MAX_DEPTH levels
    "implausible_ts",  # before ingest.min_event_time, or beyond ingest.max_future after receipt
)

#: Codes of output records that could not be written (set by the flow, not by :func:`parse`):
#: ``source_topic`` of such a dead letter is the logical *output* topic.
OUTPUT_ERROR_CODES = (
    "unserializable",  # orjson could not encode the record, or it is over ingest.max_output_bytes
    "delivery_failed",  # the producer or the broker refused the message (counted by reason)
)

#: Plausibility bounds (docs/contract.md, "Bounds"): every integer a rule reads, and every
#: product and sum of them in one event, stays far inside 64 bits.
MAX_QTY = 1_000_000  # qty of a line or an event
#: A customer is keyed by its account id, or by a device or card id behind one of these
#: prefixes; an account id cannot begin with one (it would be taken for a device or a card).
DEVICE_PREFIX, LOYALTY_PREFIX = "device:", "loyalty:"
ALIAS_PREFIXES = (DEVICE_PREFIX, LOYALTY_PREFIX)
MAX_STOCK = 1_000_000_000  # |delta| of stock_adjusted, on_hand of stock_counted
MONEY_LIMIT = 1_000_000_000  # major units, exclusive: every amount, and qty x unit price of a line
MAX_DEPTH = 32  # levels of nested objects and arrays, the event object being level 1
MIN_EVENT_TIME_MS = 946_684_800_000  # 2000-01-01T00:00:00Z, the default ingest.min_event_time
MAX_FUTURE_MS = 86_400_000  # 1 day, the default ingest.max_future
MAX_UNKNOWN_BYTES = 16_384  # the default ingest.max_unknown_bytes

#: Event time bounds: 1970-01-01 up to 2200-01-01, in epoch milliseconds.
_MAX_TS_MS = 7_258_118_400_000
# ASCII digits and \Z: ``\d`` takes any script's digits, and ``$`` matches before a final newline.
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_RFC3339_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})\Z")
_BOM = b"\xef\xbb\xbf"


@pickled_as_call
@fast_init
@dataclass(frozen=True, slots=True)
class Event:
    """A valid input event.

    ``body`` is the decoded JSON object as received (unknown fields kept),
    ``ts`` its event time in epoch milliseconds, ``topic`` the logical input
    topic (one of :data:`INPUT_TOPICS`).
    """

    event_id: str
    type: str
    topic: str
    ts: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Limits:
    """The configured ingest limits beyond the contract's fixed rules (``[ingest]`` in the config).

    ``max_unknown_bytes``: the unknown fields of an event, encoded as JSON, take at most this
    many bytes (``oversize``). ``min_ts_ms``: no event time before this (``implausible_ts``).
    ``max_future_ms``: no event time more than this after the message was received
    (``implausible_ts``; checked only when the receipt time is given).
    """

    max_unknown_bytes: int = MAX_UNKNOWN_BYTES
    min_ts_ms: int = MIN_EVENT_TIME_MS
    max_future_ms: int = MAX_FUTURE_MS


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was refused: a stable ``error`` code and a human ``detail``."""

    error: str
    detail: str


class _Invalid(Exception):
    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail


def topic_for_type(event_type: str) -> str:
    """The logical input topic that carries ``event_type``; KeyError if none does."""
    return TOPIC_OF_TYPE[event_type]


def partition_key(event: Mapping[str, Any]) -> str:
    """The Kafka message key producers should use, so one entity's events stay in order."""
    topic = TOPIC_OF_TYPE.get(event.get("type", ""), "")
    if topic == "clickstream":
        return str(event.get("customer_id") or event.get("anonymous_id") or event.get("session_id"))
    if topic == "pos":
        return str(event.get("store_id"))
    if topic == "inventory":
        return str(event.get("sku") or event.get("order_id"))
    if topic == "customers":
        return str(event.get("customer_id"))
    return str(event.get("event_id"))


def parse_ts(value: Any) -> int:
    """Event time in epoch ms from an RFC 3339 string with offset or integer epoch ms.

    >>> parse_ts("2026-11-22T10:15:30.123Z")
    1795342530123
    >>> parse_ts(1795342530123)
    1795342530123
    """
    if isinstance(value, bool):
        raise _Invalid("wrong_type", "field 'ts': expected RFC 3339 string or integer epoch ms, got bool")
    if isinstance(value, int):
        ms = value
    elif isinstance(value, str):
        match = _RFC3339_RE.match(value)
        if not match:
            raise _Invalid(
                "invalid_value",
                f"field 'ts': not an RFC 3339 timestamp with offset (2026-11-22T10:15:30.123Z): {value[:64]!r}",
            )
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        fraction = match.group(1)  # ".123", from the match: no second search
        if fraction and len(fraction) > 7:  # fromisoformat takes at most microseconds
            text = text.replace(fraction, fraction[:7], 1)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise _Invalid("invalid_value", f"field 'ts': not a valid date and time: {value[:64]!r}") from None
        ms = round(parsed.timestamp() * 1000)
    else:
        raise _Invalid("wrong_type", f"field 'ts': expected RFC 3339 string or integer epoch ms, got {_kind(value)}")
    if not 0 <= ms < _MAX_TS_MS:
        raise _Invalid("out_of_range", f"field 'ts': {ms} ms is outside 1970..2200")
    return ms


def parse(
    raw: bytes | None,
    topic: str,
    *,
    max_bytes: int = 65536,
    limits: Limits | None = None,
    received_at_ms: int | None = None,
) -> Event | Rejection:
    """Decode and validate one message of logical ``topic``; never raises on input.

    With ``limits``, the unknown fields' size and the event time's plausibility are checked
    too, after every field rule (the time's upper bound only with ``received_at_ms``, the
    wall-clock time the message was read): that is what the flow does.

    >>> raw = b'{"event_id": "e1", "type": "order_cancelled", "ts": 1795342530, "order_id": "o1"}'
    >>> parse(raw, "inventory").ts  # a valid instant (1970-01-21), but epoch seconds
    1795342530
    >>> parse(raw, "inventory", limits=Limits(), received_at_ms=1795342530123).error
    'implausible_ts'
    """
    if raw is None or len(raw) == 0:
        return Rejection("empty_message", "the message has no value")
    if not isinstance(raw, bytes):
        raw = bytes(raw)
    if len(raw) > max_bytes:
        return Rejection("oversize", f"{len(raw)} bytes is over the limit of {max_bytes}")
    if raw.startswith(_BOM):
        return Rejection("invalid_json", "a UTF-8 byte order mark is not allowed before the JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "UTF-8" in str(exc):
            return Rejection("invalid_utf8", f"not valid UTF-8: {exc}")
        return Rejection("invalid_json", f"not valid JSON: {exc}")
    # Fewer containers than levels allowed cannot nest too deep: skip the walk (C-speed counts).
    shallow = raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH
    unknown_small = limits is None or len(raw) <= limits.max_unknown_bytes
    return _validate(body, topic, limits, received_at_ms, check_depth=not shallow, check_unknown=not unknown_small)


def validate(
    body: Any, topic: str, *, limits: Limits | None = None, received_at_ms: int | None = None
) -> Event | Rejection:
    """Validate a decoded JSON value against the contract of ``topic`` (``limits``: see :func:`parse`)."""
    return _validate(body, topic, limits, received_at_ms, check_depth=True, check_unknown=limits is not None)


def _validate(
    body: Any,
    topic: str,
    limits: Limits | None,
    received_at_ms: int | None,
    *,
    check_depth: bool,
    check_unknown: bool,
) -> Event | Rejection:
    try:
        if not isinstance(body, dict):
            raise _Invalid("not_object", f"expected a JSON object, got {_kind(body)}")
        if check_depth:
            _check_depth(body)
        types = TYPES_OF_TOPIC.get(topic)
        if types is None:
            raise _Invalid("unknown_topic", f"topic {topic!r} is not an input topic")
        event_id = _string(body, "event_id", max_len=128)
        event_type = _string(body, "type")
        if event_type not in types:
            raise _Invalid("unknown_type", f"type {event_type[:64]!r} is not one of topic {topic!r}: {', '.join(types)}")
        ts = parse_ts(_required(body, "ts"))
        _COMMON[topic](body)
        _CHECKS[event_type](body)
        if limits is not None:
            if check_unknown:
                _check_unknown_size(body, topic, event_type, limits.max_unknown_bytes)
            _check_plausible_ts(ts, limits, received_at_ms)
    except _Invalid as exc:
        return Rejection(exc.error, exc.detail)
    return Event(event_id, event_type, topic, ts, body)


def event_of(body: Mapping[str, Any]) -> Event:
    """A trusted event (the simulator's, a replay's, a test's) validated against the topic of its
    ``type``; ValueError with the reason code if it breaks the contract.

    >>> event_of({"event_id": "e1", "type": "search", "ts": 5, "channel": "web", "session_id": "s",
    ...           "anonymous_id": "a", "query": "mug"}).topic
    'clickstream'
    """
    verdict = validate(body, topic_for_type(str(body["type"])))
    if isinstance(verdict, Rejection):
        raise ValueError(f"{verdict.error}: {verdict.detail}")
    return verdict


# -- field checks -----------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _required(obj: Mapping[str, Any], name: str, where: str = "") -> Any:
    if name not in obj:
        raise _Invalid("missing_field", f"field '{where}{name}' is required")
    return obj[name]


def _string(obj: Mapping[str, Any], name: str, where: str = "", *, required: bool = True, max_len: int = 256) -> str:
    value: Any = obj.get(name)
    if type(value) is str and 0 < len(value) <= max_len:  # the valid case, decided at once
        return value
    value = _required(obj, name, where) if required else value
    if not isinstance(value, str):
        raise _Invalid("wrong_type", f"field '{where}{name}': expected string, got {_kind(value)}")
    if not 1 <= len(value) <= max_len:
        raise _Invalid("out_of_range", f"field '{where}{name}': length must be 1..{max_len}, got {len(value)}")
    return value


def _optional_string(obj: Mapping[str, Any], name: str, where: str = "") -> str | None:
    if obj.get(name) is None:
        return None
    return _string(obj, name, where)


def _customer_id(obj: Mapping[str, Any], *, required: bool = True) -> str | None:
    value = _string(obj, "customer_id") if required else _optional_string(obj, "customer_id")
    if value is not None and value.startswith(ALIAS_PREFIXES):
        raise _Invalid("invalid_value", f"field 'customer_id': may not begin with {' or '.join(map(repr, ALIAS_PREFIXES))} "
                                        f"(the keys of devices and cards), got {value[:64]!r}")  # fmt: skip
    return value


def _integer(obj: Mapping[str, Any], name: str, where: str = "", *, minimum: int, maximum: int) -> int:
    value: Any = obj.get(name)
    if type(value) is int and minimum <= value <= maximum:  # the valid case, decided at once
        return value
    value = _required(obj, name, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid("wrong_type", f"field '{where}{name}': expected integer, got {_kind(value)}")
    if value < minimum:
        raise _Invalid("out_of_range", f"field '{where}{name}': must be >= {minimum}, got {value}")
    if value > maximum:
        raise _Invalid("out_of_range", f"field '{where}{name}': must be <= {maximum:_}, got {value}")
    return value


def _qty(obj: Mapping[str, Any], where: str = "") -> int:
    return _integer(obj, "qty", where, minimum=1, maximum=MAX_QTY)


def _money(obj: Mapping[str, Any], name: str, where: str = "", *, required: bool = True) -> float:
    value: Any = obj.get(name)
    kind = type(value)
    # The valid cases, decided at once (NaN and infinities fail the range test and take the long way).
    if (kind is int and 0 <= value < MONEY_LIMIT) or (
        kind is float and 0 <= value < MONEY_LIMIT and round(value, 3) == value
    ):
        return value
    if not required and value is None:
        return 0
    value = _required(obj, name, where)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid("wrong_type", f"field '{where}{name}': expected number, got {_kind(value)}")
    if not math.isfinite(value) or value < 0:
        raise _Invalid("out_of_range", f"field '{where}{name}': must be a finite amount >= 0, got {value}")
    if isinstance(value, float) and round(value, 3) != value:
        raise _Invalid("out_of_range", f"field '{where}{name}': at most 3 decimal places, got {value}")
    if value >= MONEY_LIMIT:
        raise _Invalid("out_of_range", f"field '{where}{name}': {value} is implausibly large (limit 10^9)")
    return value


def _line_value(qty: int, price: float, where: str, price_name: str) -> None:
    """qty x unit price of one line (or one cart change) stays below the money limit too."""
    if qty * price >= MONEY_LIMIT:
        raise _Invalid(
            "out_of_range",
            f"field '{where}qty': {qty} x {price_name} {price} is implausibly large (limit 10^9)",
        )


def _boolean(obj: Mapping[str, Any], name: str, where: str = "", *, required: bool = True) -> None:
    if not required and obj.get(name) is None:
        return
    value = _required(obj, name, where)
    if not isinstance(value, bool):
        raise _Invalid("wrong_type", f"field '{where}{name}': expected bool, got {_kind(value)}")


def _one_of(obj: Mapping[str, Any], name: str, allowed: tuple[str, ...], where: str = "") -> str:
    value = _string(obj, name, where)
    if value not in allowed:
        raise _Invalid("invalid_value", f"field '{where}{name}': must be one of {', '.join(allowed)}, got {value[:64]!r}")
    return value


def _lines(body: Mapping[str, Any], line_check: Callable[[Mapping[str, Any], str], None]) -> None:
    lines = _required(body, "lines")
    if not isinstance(lines, list):
        raise _Invalid("wrong_type", f"field 'lines': expected array, got {_kind(lines)}")
    if not lines:
        raise _Invalid("out_of_range", "field 'lines': must not be empty")
    if len(lines) > 1000:
        raise _Invalid("out_of_range", f"field 'lines': at most 1000 lines, got {len(lines)}")
    for i, line in enumerate(lines):
        where = f"lines[{i}]."
        if not isinstance(line, dict):
            raise _Invalid("wrong_type", f"field 'lines[{i}]': expected object, got {_kind(line)}")
        _string(line, "sku", where)
        qty = _qty(line, where)
        _line_value(qty, _money(line, "unit_price", where), where, "unit_price")
        line_check(line, where)


def _no_extra(_line: Mapping[str, Any], _where: str) -> None:
    return None


def _sale_line(line: Mapping[str, Any], where: str) -> None:
    _money(line, "discount", where, required=False)


def _return_line(line: Mapping[str, Any], where: str) -> None:
    _boolean(line, "restock", where, required=False)


@lru_cache(maxsize=1)
def _iana_zones() -> frozenset[str]:
    # The host's zoneinfo directory also holds files that are not zone names.
    special = {"localtime", "posixrules", "Factory"}
    return frozenset(
        z for z in available_timezones() if z not in special and not z.startswith(("right/", "posix/"))
    )


def is_timezone(name: str) -> bool:
    """True for an IANA time zone name such as ``Europe/London`` (not host files like ``localtime``)."""
    return name in _iana_zones()


# -- per-topic common fields -------------------------------------------------


def _clickstream_common(body: Mapping[str, Any]) -> None:
    _one_of(body, "channel", ("web", "app"))
    _string(body, "session_id")
    customer_id = _customer_id(body, required=False)
    if customer_id is None:
        _string(body, "anonymous_id")
    else:
        _optional_string(body, "anonymous_id")


def _pos_common(body: Mapping[str, Any]) -> None:
    _string(body, "store_id")
    _string(body, "receipt_id")
    _optional_string(body, "loyalty_id")


def _nothing(_body: Mapping[str, Any]) -> None:
    return None


_COMMON: dict[str, Callable[[Mapping[str, Any]], None]] = {
    "clickstream": _clickstream_common,
    "pos": _pos_common,
    "inventory": _nothing,
    "customers": _nothing,
}


# -- per-type fields ---------------------------------------------------------


def _page_view(body: Mapping[str, Any]) -> None:
    if body.get("url") is not None:
        _string(body, "url", max_len=4096)


def _product_view(body: Mapping[str, Any]) -> None:
    _string(body, "sku")
    _money(body, "price", required=False)


def _search(body: Mapping[str, Any]) -> None:
    _string(body, "query", max_len=1024)


def _add_to_cart(body: Mapping[str, Any]) -> None:
    _string(body, "sku")
    qty = _qty(body)
    _line_value(qty, _money(body, "price"), "", "price")


def _remove_from_cart(body: Mapping[str, Any]) -> None:
    _string(body, "sku")
    _qty(body)


def _order_placed(body: Mapping[str, Any]) -> None:
    _string(body, "order_id")
    _lines(body, _no_extra)
    _money(body, "total")
    _optional_string(body, "coupon_code")
    fulfillment = _required(body, "fulfillment")
    if not isinstance(fulfillment, dict):
        raise _Invalid("wrong_type", f"field 'fulfillment': expected object, got {_kind(fulfillment)}")
    if _one_of(fulfillment, "method", ("ship", "pickup"), "fulfillment.") == "pickup":
        _string(fulfillment, "location_id", "fulfillment.")


def _login(body: Mapping[str, Any]) -> None:
    _string(body, "anonymous_id")
    _customer_id(body)


def _sale(body: Mapping[str, Any]) -> None:
    _lines(body, _sale_line)
    _money(body, "total")
    _optional_string(body, "coupon_code")


def _return(body: Mapping[str, Any]) -> None:
    _lines(body, _return_line)
    _optional_string(body, "original_receipt_id")
    _optional_string(body, "original_order_id")


def _stock_received(body: Mapping[str, Any]) -> None:
    _string(body, "location_id")
    _string(body, "sku")
    _qty(body)


def _stock_adjusted(body: Mapping[str, Any]) -> None:
    _string(body, "location_id")
    _string(body, "sku")
    if _integer(body, "delta", minimum=-MAX_STOCK, maximum=MAX_STOCK) == 0:
        raise _Invalid("out_of_range", "field 'delta': must be non-zero")
    _optional_string(body, "reason")


def _stock_counted(body: Mapping[str, Any]) -> None:
    _string(body, "location_id")
    _string(body, "sku")
    _integer(body, "on_hand", minimum=0, maximum=MAX_STOCK)


def _transfer(body: Mapping[str, Any]) -> None:
    source = _string(body, "from_location_id")
    if _string(body, "to_location_id") == source:
        raise _Invalid("invalid_value", "fields 'from_location_id' and 'to_location_id' must differ")
    _string(body, "sku")
    _qty(body)


def _order_fulfilled(body: Mapping[str, Any]) -> None:
    _string(body, "order_id")
    _string(body, "location_id")


def _order_cancelled(body: Mapping[str, Any]) -> None:
    _string(body, "order_id")


def _identity_linked(body: Mapping[str, Any]) -> None:
    _customer_id(body)
    loyalty = _optional_string(body, "loyalty_id")
    device = _optional_string(body, "anonymous_id")
    if loyalty is None and device is None:
        raise _Invalid("missing_field", "field 'loyalty_id' or 'anonymous_id' is required")


def _consent_changed(body: Mapping[str, Any]) -> None:
    _customer_id(body)
    _boolean(body, "marketing")
    channels = body.get("channels")
    if channels is None:
        return
    if not isinstance(channels, list):
        raise _Invalid("wrong_type", f"field 'channels': expected array, got {_kind(channels)}")
    for i, channel in enumerate(channels):
        if not isinstance(channel, str):
            raise _Invalid("wrong_type", f"field 'channels[{i}]': expected string, got {_kind(channel)}")
        if channel not in ("email", "push", "sms"):
            raise _Invalid("invalid_value", f"field 'channels[{i}]': must be one of email, push, sms")


def _profile_updated(body: Mapping[str, Any]) -> None:
    _customer_id(body)
    birthday = _optional_string(body, "birthday")
    if birthday is not None:
        try:
            if not _DATE_RE.match(birthday):
                raise ValueError
            datetime.strptime(birthday, "%Y-%m-%d")
        except ValueError:
            raise _Invalid("invalid_value", f"field 'birthday': expected YYYY-MM-DD, got {birthday[:32]!r}") from None
    timezone = _optional_string(body, "timezone")
    if timezone is not None and not is_timezone(timezone):
        raise _Invalid("invalid_value", f"field 'timezone': unknown IANA time zone {timezone[:64]!r}")
    _optional_string(body, "home_store_id")


def _erasure_requested(body: Mapping[str, Any]) -> None:
    _customer_id(body)


_CHECKS: dict[str, Callable[[Mapping[str, Any]], None]] = {
    "page_view": _page_view,
    "product_view": _product_view,
    "search": _search,
    "add_to_cart": _add_to_cart,
    "remove_from_cart": _remove_from_cart,
    "checkout_started": _nothing,
    "order_placed": _order_placed,
    "login": _login,
    "sale": _sale,
    "return": _return,
    "stock_received": _stock_received,
    "stock_adjusted": _stock_adjusted,
    "stock_counted": _stock_counted,
    "transfer": _transfer,
    "order_fulfilled": _order_fulfilled,
    "order_cancelled": _order_cancelled,
    "identity_linked": _identity_linked,
    "consent_changed": _consent_changed,
    "profile_updated": _profile_updated,
    "erasure_requested": _erasure_requested,
}


# -- bounds on the whole event -------------------------------------------------


def _check_depth(body: dict[str, Any]) -> None:
    """``too_deep`` when objects and arrays nest deeper than :data:`MAX_DEPTH` anywhere.

    Iterative: a deep value must not exhaust the stack here (orjson encodes at most 254
    levels and Python's deepcopy, used for Bytewax snapshots, about 330).
    """
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > MAX_DEPTH:
                    raise _Invalid("too_deep", f"objects and arrays nest deeper than {MAX_DEPTH} levels")
                stack.append((child, depth + 1))


_COMMON_FIELDS = frozenset({"event_id", "type", "ts"})
_TOPIC_FIELDS: dict[str, frozenset[str]] = {
    "clickstream": frozenset({"channel", "session_id", "customer_id", "anonymous_id"}),
    "pos": frozenset({"store_id", "receipt_id", "loyalty_id"}),
    "inventory": frozenset(),
    "customers": frozenset(),
}
_TYPE_FIELDS: dict[str, frozenset[str]] = {
    "page_view": frozenset({"url"}),
    "product_view": frozenset({"sku", "price"}),
    "search": frozenset({"query"}),
    "add_to_cart": frozenset({"sku", "qty", "price"}),
    "remove_from_cart": frozenset({"sku", "qty"}),
    "checkout_started": frozenset(),
    "order_placed": frozenset({"order_id", "lines", "total", "coupon_code", "fulfillment"}),
    "login": frozenset({"anonymous_id", "customer_id"}),
    "sale": frozenset({"lines", "total", "coupon_code"}),
    "return": frozenset({"lines", "original_receipt_id", "original_order_id"}),
    "stock_received": frozenset({"location_id", "sku", "qty"}),
    "stock_adjusted": frozenset({"location_id", "sku", "delta", "reason"}),
    "stock_counted": frozenset({"location_id", "sku", "on_hand"}),
    "transfer": frozenset({"from_location_id", "to_location_id", "sku", "qty"}),
    "order_fulfilled": frozenset({"order_id", "location_id"}),
    "order_cancelled": frozenset({"order_id"}),
    "identity_linked": frozenset({"customer_id", "loyalty_id", "anonymous_id"}),
    "consent_changed": frozenset({"customer_id", "marketing", "channels"}),
    "profile_updated": frozenset({"customer_id", "birthday", "timezone", "home_store_id"}),
    "erasure_requested": frozenset({"customer_id"}),
}
_LINE_FIELDS: dict[str, frozenset[str]] = {
    "order_placed": frozenset({"sku", "qty", "unit_price"}),
    "sale": frozenset({"sku", "qty", "unit_price", "discount"}),
    "return": frozenset({"sku", "qty", "unit_price", "restock"}),
}
_FULFILLMENT_FIELDS = frozenset({"method", "location_id"})


def _unknown_bytes(obj: Mapping[str, Any], known: frozenset[str]) -> int:
    unknown = {k: v for k, v in obj.items() if k not in known}
    if not unknown:
        return 0
    try:
        return len(orjson.dumps(unknown)) - 2  # without the braces
    except (TypeError, ValueError):  # not JSON (a caller's dict, not a decoded message)
        return 1 << 62


def unknown_bytes(body: Mapping[str, Any], topic: str, event_type: str) -> int:
    """The size of a valid event's unknown fields (at the top, in ``lines[]`` and in
    ``fulfillment``) encoded as JSON objects, without their braces."""
    known = _COMMON_FIELDS | _TOPIC_FIELDS[topic] | _TYPE_FIELDS[event_type]
    total = _unknown_bytes(body, known)
    line_fields = _LINE_FIELDS.get(event_type)
    if line_fields is not None:
        total += sum(_unknown_bytes(line, line_fields) for line in body["lines"])
    if event_type == "order_placed":
        total += _unknown_bytes(body["fulfillment"], _FULFILLMENT_FIELDS)
    return total


def _check_unknown_size(body: Mapping[str, Any], topic: str, event_type: str, limit: int) -> None:
    size = unknown_bytes(body, topic, event_type)
    if size > limit:
        raise _Invalid("oversize", f"unknown fields take {size} bytes, over the limit of {limit}")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _check_plausible_ts(ts: int, limits: Limits, received_at_ms: int | None) -> None:
    if ts < limits.min_ts_ms:
        hint = " (epoch seconds instead of milliseconds?)" if limits.min_ts_ms <= ts * 1000 < _MAX_TS_MS else ""
        raise _Invalid(
            "implausible_ts",
            f"field 'ts': {_iso(ts)} is before ingest.min_event_time {_iso(limits.min_ts_ms)}{hint}",
        )
    if received_at_ms is not None and ts > received_at_ms + limits.max_future_ms:
        raise _Invalid(
            "implausible_ts",
            f"field 'ts': {_iso(ts)} is more than ingest.max_future ({limits.max_future_ms} ms) after it was "
            f"received ({_iso(received_at_ms)})",
        )
