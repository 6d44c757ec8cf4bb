"""Configuration: a TOML file, overridden by ``CHANNELFLOW_*`` environment variables.

Everything is checked at start-up; a bad key, type or value raises
:class:`ConfigError` naming the key, e.g. ``time.allowed_lateness: expected a
duration such as '30s', '5m', '2h' or '90d', got 'soon'``.

Environment overrides use the dotted key in upper case with ``__`` between
levels: ``CHANNELFLOW_KAFKA__BROKERS=host1:9092,host2:9092``,
``CHANNELFLOW_TIME__ALLOWED_LATENESS=10m``. The value is read as a TOML value
when it parses as one (``8``, ``true``, ``["a", "b"]``), else as a string.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from operators.contract import INPUT_TOPICS, is_timezone

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "channelflow.toml"
ENV_PREFIX = "CHANNELFLOW_"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_MAX_DURATION_S = 100 * 365 * 86_400
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")

INPUT_TOPIC_KEYS = INPUT_TOPICS
OUTPUT_TOPIC_KEYS = ("promotions", "inventory_updates", "alerts", "customer_scores", "dead_letters")


class ConfigError(ValueError):
    """Invalid configuration; the message starts with the offending key."""


@dataclass(frozen=True)
class KafkaConfig:
    brokers: tuple[str, ...]
    topics: Mapping[str, str]
    topic_partitions: int
    starting_offset: str
    batch_size: int

    @property
    def bootstrap(self) -> str:
        return ",".join(self.brokers)

    @property
    def input_topics(self) -> dict[str, str]:
        """Kafka topic name -> logical input topic."""
        return {self.topics[k]: k for k in INPUT_TOPIC_KEYS}


@dataclass(frozen=True)
class TimeConfig:
    allowed_lateness_ms: int
    idle_timeout_ms: int
    dedupe_horizon_ms: int


@dataclass(frozen=True)
class IngestConfig:
    max_event_bytes: int


@dataclass(frozen=True)
class FlowConfig:
    shards: int
    workers_per_process: int
    snapshot_interval_ms: int
    backup_interval_ms: int
    recovery_dir: Path | None
    recovery_partitions: int


@dataclass(frozen=True)
class MetricsConfig:
    host: str
    port: int


@dataclass(frozen=True)
class Location:
    id: str
    type: str
    timezone: str
    priority: int
    opens: str | None = None
    closes: str | None = None


@dataclass(frozen=True)
class InventoryConfig:
    safety_stock: Mapping[str, int]
    safety_stock_overrides: Mapping[tuple[str, str], int]
    low_stock_threshold: int
    pickup_expiry_ms: int


@dataclass(frozen=True)
class CustomersConfig:
    device_ttl_ms: int
    recent_views: int
    tiers: tuple[tuple[str, int], ...]  # (name, lifetime value threshold in milli-units), ascending


@dataclass(frozen=True)
class ChurnConfig:
    horizon_ms: int
    tick_ms: int
    model: str
    score_change: float
    at_risk: float
    lapsing: float


@dataclass(frozen=True)
class AnomalyConfig:
    """``[anomaly]``: KPI windows, the window detector and the per-event outlier checks."""

    window_ms: int
    session_timeout_ms: int
    detector: str
    threshold: float
    half_life: float
    warmup: int
    drift: float
    suppress_k: int
    clear_windows: int
    max_episode_windows: int
    min_sessions: int
    basket_z: float
    basket_warmup: int
    price_deviation: float
    price_warmup: int
    outlier_cooldown_ms: int


@dataclass(frozen=True)
class Config:
    kafka: KafkaConfig
    time: TimeConfig
    ingest: IngestConfig
    flow: FlowConfig
    metrics: MetricsConfig
    currency: str
    locations: tuple[Location, ...]
    inventory: InventoryConfig
    customers: CustomersConfig
    churn: ChurnConfig
    anomaly: AnomalyConfig
    source: Path | None = field(default=None, compare=False)


# -- value parsers: each takes (key, raw value) and returns the typed value ---


def _fail(key: str, expected: str, got: Any) -> ConfigError:
    shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
    return ConfigError(f"{key}: expected {expected}, got {shown}")


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(key, "a non-empty string", value)
    return value


def _int(minimum: int, maximum: int | None = None) -> Callable[[str, Any], int]:
    def parse(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(key, "an integer", value)
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f">= {minimum}" if maximum is None else f"{minimum}..{maximum}"
            raise _fail(key, f"an integer {bounds}", value)
        return value

    return parse


def _positive_duration(key: str, value: Any) -> int:
    millis = _duration(key, value)
    if millis <= 0:
        raise _fail(key, "a duration > 0", value)
    return millis


def _duration(key: str, value: Any) -> int:
    """Milliseconds from '500ms', '30s', '5m', '2h', '90d' (or a bare number of seconds)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= _MAX_DURATION_S:
        return round(value * 1000)
    match = _DURATION.match(value) if isinstance(value, str) else None
    millis = round(float(match.group(1)) * _UNIT_MS[match.group(2)]) if match else -1
    if not 0 <= millis <= _MAX_DURATION_S * 1000:
        raise _fail(key, "a duration such as '30s', '5m', '2h' or '90d'", value)
    return millis


def _brokers(key: str, value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _fail(key, "a list of 'host:port' strings", value)
    brokers = tuple(_str(f"{key}[{i}]", b).strip() for i, b in enumerate(items))
    for i, broker in enumerate(brokers):
        host, _, port = broker.rpartition(":")
        if not host or not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
            raise _fail(f"{key}[{i}]", "'host:port'", broker)
    return brokers


def _timezone(key: str, value: Any) -> str:
    name = _str(key, value)
    if not is_timezone(name):
        raise _fail(key, "an IANA time zone such as 'Europe/London'", value)
    return name


def _one_of(*allowed: str) -> Callable[[str, Any], str]:
    def parse(key: str, value: Any) -> str:
        if value not in allowed:
            raise _fail(key, "one of " + ", ".join(repr(a) for a in allowed), value)
        return str(value)

    return parse


def _hhmm(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _HHMM.match(value):
        raise _fail(key, "a local time 'HH:MM'", value)
    return value


def _table(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(key, "a table", value)
    return value


def _take(table: Mapping[str, Any], section: str, spec: Mapping[str, Callable[[str, Any], Any]]) -> dict[str, Any]:
    """Parse every key of ``spec`` from ``table``; unknown or missing keys are errors."""
    unknown = sorted(set(table) - set(spec))
    if unknown:
        raise ConfigError(f"{section}.{unknown[0]}: unknown key (known: {', '.join(spec)})")
    missing = [k for k in spec if k not in table]
    if missing:
        raise ConfigError(f"{section}.{missing[0]}: missing")
    return {k: parse(f"{section}.{k}", table[k]) for k, parse in spec.items()}


# The parsers, public for the other config files (``operators/promotion_rules.py``).
fail, parse_str, parse_int, parse_duration, parse_positive_duration = _fail, _str, _int, _duration, _positive_duration
parse_timezone, parse_one_of, parse_hhmm, parse_table, take = _timezone, _one_of, _hhmm, _table, _take


# -- sections ------------------------------------------------------------------


def _kafka(raw: dict[str, Any]) -> KafkaConfig:
    values = _take(
        raw,
        "kafka",
        {
            "brokers": _brokers,
            "topics": _table,
            "topic_partitions": _int(1, 1024),
            "starting_offset": _one_of("beginning", "end"),
            "batch_size": _int(1, 100_000),
        },
    )
    topics = _take(values["topics"], "kafka.topics", dict.fromkeys(INPUT_TOPIC_KEYS + OUTPUT_TOPIC_KEYS, _str))
    names = list(topics.values())
    for key, name in topics.items():
        if names.count(name) > 1:
            raise ConfigError(f"kafka.topics.{key}: topic {name!r} is used twice")
    values["topics"] = topics
    return KafkaConfig(**values)


def _locations(raw: Any) -> tuple[Location, ...]:
    if not isinstance(raw, list) or not raw:
        raise _fail("locations", "a non-empty array of [[locations]] tables", raw)
    seen: set[str] = set()
    locations = []
    for i, entry in enumerate(raw):
        section = f"locations[{i}]"
        table = dict(_table(section, entry))
        optional = {k: table.pop(k) for k in ("opens", "closes") if k in table}
        values = _take(
            table,
            section,
            {"id": _str, "type": _one_of("store", "warehouse"), "timezone": _timezone, "priority": _int(0)},
        )
        for k, v in optional.items():
            values[k] = _hhmm(f"{section}.{k}", v)
        if values["id"] in seen:
            raise ConfigError(f"{section}.id: location {values['id']!r} is defined twice")
        seen.add(values["id"])
        locations.append(Location(**values))
    return tuple(locations)


def _inventory(raw: dict[str, Any], locations: tuple[Location, ...]) -> InventoryConfig:
    values = _take(
        raw,
        "inventory",
        {
            "safety_stock": _table,
            "safety_stock_overrides": lambda key, v: v,
            "low_stock_threshold": _int(0),
            "pickup_expiry": _duration,
        },
    )
    safety = _take(values["safety_stock"], "inventory.safety_stock", {"store": _int(0), "warehouse": _int(0)})
    known = {loc.id for loc in locations}
    overrides: dict[tuple[str, str], int] = {}
    entries = values["safety_stock_overrides"]
    if not isinstance(entries, list):
        raise _fail("inventory.safety_stock_overrides", "an array of {sku, location_id, units} tables", entries)
    for i, entry in enumerate(entries):
        section = f"inventory.safety_stock_overrides[{i}]"
        item = _take(_table(section, entry), section, {"sku": _str, "location_id": _str, "units": _int(0)})
        if item["location_id"] not in known:
            raise ConfigError(f"{section}.location_id: unknown location {item['location_id']!r}")
        overrides[(item["sku"], item["location_id"])] = item["units"]
    return InventoryConfig(safety, overrides, values["low_stock_threshold"], values["pickup_expiry"])


def _money_millis(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _fail(key, "an amount >= 0 in major currency units", value)
    return round(value * 1000)


def _customers(raw: dict[str, Any]) -> CustomersConfig:
    values = _take(raw, "customers", {"device_ttl": _positive_duration, "recent_views": _int(1, 1000), "tiers": _table})
    tiers = sorted(
        ((name, _money_millis(f"customers.tiers.{name}", v)) for name, v in values["tiers"].items()),
        key=lambda tier: tier[1],
    )
    if not tiers or tiers[0][1] != 0:
        raise ConfigError("customers.tiers: expected one tier with threshold 0 (the entry tier)")
    return CustomersConfig(values["device_ttl"], values["recent_views"], tuple(tiers))


def _fraction(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise _fail(key, "a number from 0 to 1", value)
    return float(value)


def _churn(raw: dict[str, Any]) -> ChurnConfig:
    values = _take(
        raw,
        "churn",
        {
            "horizon": _positive_duration,
            "tick": _positive_duration,
            "model": _one_of("logistic", "hoeffding_adaptive_tree"),
            "score_change": _fraction,
            "at_risk": _fraction,
            "lapsing": _fraction,
        },
    )
    if values["at_risk"] > values["lapsing"]:
        raise _fail("churn.at_risk", f"a score <= churn.lapsing ({values['lapsing']})", raw["at_risk"])
    return ChurnConfig(
        values["horizon"], values["tick"], values["model"], values["score_change"], values["at_risk"], values["lapsing"]
    )


def _number(minimum: float, maximum: float | None = None) -> Callable[[str, Any], float]:
    def parse(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(key, "a number", value)
        if not minimum < value or (maximum is not None and value > maximum):
            bounds = f"> {minimum}" if maximum is None else f"> {minimum} and <= {maximum}"
            raise _fail(key, f"a number {bounds}", value)
        return float(value)

    return parse


ANOMALY_DETECTORS = ("cusum", "zscore", "gaussian", "hst")


def _anomaly(raw: dict[str, Any]) -> AnomalyConfig:
    values = _take(
        raw,
        "anomaly",
        {
            "window": _positive_duration,
            "session_timeout": _positive_duration,
            "detector": _one_of(*ANOMALY_DETECTORS),
            "threshold": _number(0.0),
            "half_life": _number(0.0),
            "warmup": _int(0, 100_000),
            "drift": _number(-1.0),
            "suppress_k": _int(1, 10_000),
            "clear_windows": _int(1, 10_000),
            "max_episode_windows": _int(1, 1_000_000),
            "min_sessions": _int(0),
            "basket_z": _number(0.0),
            "basket_warmup": _int(0),
            "price_deviation": _number(0.0),
            "price_warmup": _int(0),
            "outlier_cooldown": _duration,
        },
    )
    if values["drift"] < 0:
        raise _fail("anomaly.drift", "a number >= 0", raw["drift"])
    return AnomalyConfig(
        values["window"], values["session_timeout"], values["detector"], values["threshold"], values["half_life"],
        values["warmup"], values["drift"], values["suppress_k"], values["clear_windows"],
        values["max_episode_windows"], values["min_sessions"], values["basket_z"], values["basket_warmup"],
        values["price_deviation"], values["price_warmup"], values["outlier_cooldown"],
    )  # fmt: skip


def check_sections(doc: Mapping[str, Any], sections: tuple[str, ...]) -> None:
    """ConfigError naming the first unknown or missing top-level section."""
    unknown = sorted(set(doc) - set(sections))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section (known: {', '.join(sections)})")
    for name in sections:
        if name not in doc:
            raise ConfigError(f"{name}: missing section")


def from_mapping(raw: Mapping[str, Any], source: Path | None = None) -> Config:
    """Build and validate a :class:`Config` from a parsed TOML document."""
    doc = dict(raw)
    sections = (
        "kafka", "time", "ingest", "flow", "metrics", "currency", "locations", "inventory", "customers", "churn",
        "anomaly",
    )  # fmt: skip
    check_sections(doc, sections)
    time = _take(
        _table("time", doc["time"]),
        "time",
        {"allowed_lateness": _duration, "idle_timeout": _duration, "dedupe_horizon": _duration},
    )
    ingest = _take(_table("ingest", doc["ingest"]), "ingest", {"max_event_bytes": _int(64, 16 * 1024 * 1024)})
    flow = _take(
        _table("flow", doc["flow"]),
        "flow",
        {
            "shards": _int(1, 256),
            "workers_per_process": _int(1, 64),
            "snapshot_interval": _positive_duration,
            "backup_interval": _duration,
            "recovery_dir": _str,
            "recovery_partitions": _int(1, 1024),
        },
    )
    metrics = _take(_table("metrics", doc["metrics"]), "metrics", {"host": _str, "port": _int(0, 65535)})
    currency = _take(_table("currency", doc["currency"]), "currency", {"code": _str})["code"]
    locations = _locations(doc["locations"])
    recovery_dir = None if flow["recovery_dir"].strip().lower() == "none" else Path(flow["recovery_dir"])
    return Config(
        kafka=_kafka(_table("kafka", doc["kafka"])),
        time=TimeConfig(time["allowed_lateness"], time["idle_timeout"], time["dedupe_horizon"]),
        ingest=IngestConfig(ingest["max_event_bytes"]),
        flow=FlowConfig(
            flow["shards"],
            flow["workers_per_process"],
            flow["snapshot_interval"],
            flow["backup_interval"],
            recovery_dir,
            flow["recovery_partitions"],
        ),
        metrics=MetricsConfig(metrics["host"], metrics["port"]),
        currency=currency,
        locations=locations,
        inventory=_inventory(_table("inventory", doc["inventory"]), locations),
        customers=_customers(_table("customers", doc["customers"])),
        churn=_churn(_table("churn", doc["churn"])),
        anomaly=_anomaly(_table("anomaly", doc["anomaly"])),
        source=source,
    )


def _env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


#: Overrides of the promotions file (``operators/promotion_rules.py``), not of this one.
PROMOTIONS_ENV_PREFIX = ENV_PREFIX + "PROMOTIONS__"


def apply_env(doc: dict[str, Any], environ: Mapping[str, str], prefix: str = ENV_PREFIX) -> dict[str, Any]:
    """Overlay ``<prefix>SECTION__KEY`` variables onto a parsed document.

    With the default prefix, the promotions file's ``CHANNELFLOW_PROMOTIONS__*`` are skipped.
    """
    for name, text in sorted(environ.items()):
        if not name.startswith(prefix) or "__" not in name[len(prefix) :]:
            continue
        if prefix == ENV_PREFIX and name.startswith(PROMOTIONS_ENV_PREFIX):
            continue
        path = name[len(prefix) :].lower().split("__")
        table = doc
        for part in path[:-1]:
            node = table.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: {'.'.join(path)} does not name a table key")
            table = node
        table[path[-1]] = _env_value(text)
    return doc


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, overlay the environment onto and validate the config file.

    ``path`` defaults to ``$CHANNELFLOW_CONFIG`` or the bundled
    ``config/channelflow.toml``.
    """
    env = os.environ if environ is None else environ
    file = Path(path or env.get("CHANNELFLOW_CONFIG") or DEFAULT_CONFIG)
    return from_mapping(apply_env(read_toml(file, "config"), env), source=file)


def read_toml(file: Path, what: str) -> dict[str, Any]:
    """Parse a TOML file; a missing, unreadable or invalid one is a :class:`ConfigError` naming ``what``."""
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} file {file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} file {file} cannot be read as UTF-8 text: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} file {file} is not valid TOML: {exc}") from None
