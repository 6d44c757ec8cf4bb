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
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

import orjson

__all__ = [
    "ERROR_CODES",
    "INPUT_TOPICS",
    "TOPIC_OF_TYPE",
    "TYPES_OF_TOPIC",
    "Event",
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
    "oversize",  # larger than ingest.max_event_bytes
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
)

#: Event time bounds: 1970-01-01 up to 2200-01-01, in epoch milliseconds.
_MAX_TS_MS = 7_258_118_400_000
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
_BOM = b"\xef\xbb\xbf"


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


def parse(raw: bytes | None, topic: str, *, max_bytes: int = 65536) -> Event | Rejection:
    """Decode and validate one message of logical ``topic``; never raises on input."""
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
    return validate(body, topic)


def validate(body: Any, topic: str) -> Event | Rejection:
    """Validate a decoded JSON value against the contract of ``topic``."""
    try:
        if not isinstance(body, dict):
            raise _Invalid("not_object", f"expected a JSON object, got {_kind(body)}")
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
    value = _required(obj, name, where) if required else obj.get(name)
    if not isinstance(value, str):
        raise _Invalid("wrong_type", f"field '{where}{name}': expected string, got {_kind(value)}")
    if not 1 <= len(value) <= max_len:
        raise _Invalid("out_of_range", f"field '{where}{name}': length must be 1..{max_len}, got {len(value)}")
    return value


def _optional_string(obj: Mapping[str, Any], name: str, where: str = "") -> str | None:
    if obj.get(name) is None:
        return None
    return _string(obj, name, where)


def _integer(obj: Mapping[str, Any], name: str, where: str = "", *, minimum: int | None = None) -> int:
    value = _required(obj, name, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid("wrong_type", f"field '{where}{name}': expected integer, got {_kind(value)}")
    if minimum is not None and value < minimum:
        raise _Invalid("out_of_range", f"field '{where}{name}': must be >= {minimum}, got {value}")
    return value


def _money(obj: Mapping[str, Any], name: str, where: str = "", *, required: bool = True) -> None:
    if not required and obj.get(name) is None:
        return
    value = _required(obj, name, where)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid("wrong_type", f"field '{where}{name}': expected number, got {_kind(value)}")
    if not math.isfinite(value) or value < 0:
        raise _Invalid("out_of_range", f"field '{where}{name}': must be a finite amount >= 0, got {value}")
    if isinstance(value, float) and round(value, 3) != value:
        raise _Invalid("out_of_range", f"field '{where}{name}': at most 3 decimal places, got {value}")
    if value >= 1e12:
        raise _Invalid("out_of_range", f"field '{where}{name}': {value} is implausibly large")


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
        _integer(line, "qty", where, minimum=1)
        _money(line, "unit_price", where)
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
    customer_id = _optional_string(body, "customer_id")
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
    _integer(body, "qty", minimum=1)
    _money(body, "price")


def _remove_from_cart(body: Mapping[str, Any]) -> None:
    _string(body, "sku")
    _integer(body, "qty", minimum=1)


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
    _string(body, "customer_id")


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
    _integer(body, "qty", minimum=1)


def _stock_adjusted(body: Mapping[str, Any]) -> None:
    _string(body, "location_id")
    _string(body, "sku")
    if _integer(body, "delta") == 0:
        raise _Invalid("out_of_range", "field 'delta': must be non-zero")
    _optional_string(body, "reason")


def _stock_counted(body: Mapping[str, Any]) -> None:
    _string(body, "location_id")
    _string(body, "sku")
    _integer(body, "on_hand", minimum=0)


def _transfer(body: Mapping[str, Any]) -> None:
    source = _string(body, "from_location_id")
    if _string(body, "to_location_id") == source:
        raise _Invalid("invalid_value", "fields 'from_location_id' and 'to_location_id' must differ")
    _string(body, "sku")
    _integer(body, "qty", minimum=1)


def _order_fulfilled(body: Mapping[str, Any]) -> None:
    _string(body, "order_id")
    _string(body, "location_id")


def _order_cancelled(body: Mapping[str, Any]) -> None:
    _string(body, "order_id")


def _identity_linked(body: Mapping[str, Any]) -> None:
    _string(body, "customer_id")
    loyalty = _optional_string(body, "loyalty_id")
    device = _optional_string(body, "anonymous_id")
    if loyalty is None and device is None:
        raise _Invalid("missing_field", "field 'loyalty_id' or 'anonymous_id' is required")


def _consent_changed(body: Mapping[str, Any]) -> None:
    _string(body, "customer_id")
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
    _string(body, "customer_id")
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
    _string(body, "customer_id")


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
