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

import copy
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from datetime import time
from importlib.resources import files
from logging.handlers import BufferingHandler
from pathlib import Path
from typing import Any

from flows.config import (
    INPUT_TOPIC_KEYS,
    OUTPUT_TOPIC_KEYS,
    Config,
    FlowConfig,
    IngestConfig,
    KafkaConfig,
    MetricsConfig,
    TimeConfig,
)
from operators.anomalies.settings import ANOMALY_DETECTORS, ANOMALY_MEASURES, AnomalyConfig
from operators.churn.model import MODELS
from operators.churn.settings import ChurnConfig
from operators.contract.dead_letter import MAX_OUTPUT_BYTES, MIN_OUTPUT_BYTES
from operators.contract.events import MAX_UNKNOWN_BYTES, parse_ts
from operators.customers.settings import CustomersConfig
from operators.inventory.settings import InventoryConfig
from operators.locations import Location
from operators.promotions.rules import PromotionSettings
from operators.promotions.rules_file import promotions_from_mapping
from operators.settings import (
    ConfigError,
    check_sections,
    fail,
    parse_brokers,
    parse_duration,
    parse_hhmm,
    parse_int,
    parse_money,
    parse_number,
    parse_one_of,
    parse_positive_duration,
    parse_str,
    parse_table,
    parse_timezone,
    take,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# The bundled defaults: the repo's config/*.toml, installed as the package channelflow.defaults
# ([tool.setuptools.package-dir] in pyproject.toml), so found from any working directory. For a
# wheel or an editable install the package is on the file system and files() is a pathlib.Path;
# imported from a zip archive these paths name no file and load_config reports "does not exist".


def _defaults() -> Path:
    try:
        return Path(str(files("channelflow.defaults")))
    except ModuleNotFoundError:  # a checkout on sys.path that was never installed
        return Path(__file__).resolve().parent.parent / "config"


DEFAULT_CONFIG = _defaults() / "channelflow.toml"
DEFAULT_PROMOTIONS = DEFAULT_CONFIG.with_name("promotions.toml")
ENV_PREFIX = "CHANNELFLOW_"



#: librdkafka properties channelflow sets itself, per kind of client. The consumers: offsets
#: live in the recovery state, the source marks where a partition is caught up from
#: librdkafka's partition EOF. The producer: its largest message follows ``ingest.max_output_bytes``.
#: Every client: the brokers come from ``kafka.brokers`` and librdkafka logs through the shell's logger.
RESERVED_PROPERTIES: dict[str, tuple[str, ...]] = {
    "consumer": (
        "bootstrap.servers", "group.id", "enable.auto.commit", "enable.auto.offset.store", "enable.partition.eof",
        "auto.offset.reset", "logger",
    ),
    "producer": ("bootstrap.servers", "message.max.bytes", "logger"),
}  # fmt: skip
RESERVED_PROPERTIES["client"] = tuple(dict.fromkeys(RESERVED_PROPERTIES["consumer"] + RESERVED_PROPERTIES["producer"]))

#: The tables of ``[kafka]`` that hold librdkafka properties, and the clients each reaches.
CLIENT_TABLES = ("client", "consumer", "producer")


def parse_client_properties(key: str, value: Any, kind: str) -> dict[str, str | int | float | bool]:
    """librdkafka properties for one kind of client, checked by librdkafka itself.

    ``kind`` is ``"consumer"`` (the flow's input consumers), ``"producer"`` (its output
    producer) or ``"client"`` (every client channelflow opens: consumers, producers and admin
    clients; security settings such as ``security.protocol``, ``sasl.*`` and ``ssl.*`` belong
    here). Nested tables read as dotted names, so ``fetch.wait.max.ms = 100`` (a TOML dotted
    key) and ``CHANNELFLOW_KAFKA__CONSUMER__FETCH__WAIT__MAX__MS=100`` both name
    ``fetch.wait.max.ms``. An unknown property, a bad value, a property the client would
    ignore (a producer's in ``[kafka.consumer]``, either's in ``[kafka.client]``) or one
    channelflow sets itself is a :class:`ConfigError` naming the key.
    """
    flat: dict[str, str | int | float | bool] = {}

    def walk(prefix: str, table: dict[str, Any]) -> None:
        for name, item in table.items():
            dotted = f"{prefix}.{name}" if prefix else name
            if isinstance(item, dict):
                walk(dotted, item)
            elif isinstance(item, (str, int, float, bool)):
                flat[dotted] = item
            else:
                raise fail(f"{key}.{dotted}", "a string, number or boolean", item)

    walk("", parse_table(key, value))
    for name in flat:
        if name in RESERVED_PROPERTIES[kind]:
            raise ConfigError(f"{key}.{name}: set by channelflow itself, not configurable")
    kinds = ("consumer", "producer") if kind == "client" else (kind,)

    def refused(properties: Mapping[str, Any]) -> str | None:
        return next((p for p in (_client_refuses(k, properties) for k in kinds) if p), None)

    problem = refused(flat)
    if problem:
        # Name the property librdkafka names, else the first refused on its own (some are
        # refused only alone: security.protocol without its sasl.mechanism).
        named = next((name for name in flat if f'"{name}"' in problem or f" {name} " in problem), None)
        named = named or next((name for name in flat if refused({name: flat[name]})), None)
        raise ConfigError(f"{key}.{named}: {problem}" if named else f"{key}: {problem}")
    return flat


def _client_refuses(kind: str, properties: Mapping[str, Any]) -> str | None:
    """What librdkafka says against a ``kind`` client (``consumer`` or ``producer``) with
    ``properties`` (None: nothing). Building one connects to nothing: no ``bootstrap.servers``
    is given."""
    # Imported only when a table is set.
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

    logger = logging.getLogger("channelflow.config.librdkafka")
    logger.propagate = False
    handler = BufferingHandler(capacity=10_000)  # keeps what librdkafka logs while it is built
    logger.addHandler(handler)
    try:
        if kind == "consumer":
            Consumer({"group.id": "channelflow-config-check", **properties, "logger": logger}).close()
        else:
            Producer({**properties, "logger": logger}).flush(0)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        return (error.str() if isinstance(error, KafkaError) else str(error)).strip()
    finally:
        logger.removeHandler(handler)
    warnings = [record.getMessage() for record in handler.buffer if record.levelno >= logging.WARNING]
    # e.g. "Configuration property linger.ms is a producer property and will be ignored by this consumer instance"
    conf = [text.split("]: ", 1)[-1] for text in warnings if "CONFWARN" in text or "onfiguration" in text]
    conf = [text for text in conf if "bootstrap.servers" not in text]  # none is given on purpose
    return conf[0].strip() if conf else None


#: librdkafka properties whose values are secrets: ``check-config`` shows them as :data:`HIDDEN`.
SECRET_PROPERTIES = ("password", "secret", "ssl.key.pem", "sasl.oauthbearer.config")
HIDDEN = "(hidden)"


def hide_secrets(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (a config document) with the values of secret client properties hidden."""
    kafka = doc.get("kafka")
    if not isinstance(kafka, dict):
        return doc

    def hide(prefix: str, table: dict[str, Any]) -> dict[str, Any]:
        shown = {}
        for name, value in table.items():
            dotted = f"{prefix}.{name}" if prefix else name
            if isinstance(value, dict):
                shown[name] = hide(dotted, value)
            else:
                shown[name] = HIDDEN if any(secret in dotted for secret in SECRET_PROPERTIES) else value
        return shown

    tables = {t: hide("", kafka[t]) for t in CLIENT_TABLES if isinstance(kafka.get(t), dict)}
    return {**doc, "kafka": {**kafka, **tables}}


def _kafka(raw: dict[str, Any]) -> KafkaConfig:
    raw = dict(raw)
    clients = {
        table: parse_client_properties(f"kafka.{table}", raw.pop(table), table)
        for table in CLIENT_TABLES
        if table in raw
    }
    values = take(
        raw,
        "kafka",
        {
            "brokers": parse_brokers,
            "topics": parse_table,
            "topic_partitions": parse_int(1, 1024),
            "starting_offset": parse_one_of("beginning", "end"),
            "batch_size": parse_int(1, 100_000),
        },
    )
    topics = take(values["topics"], "kafka.topics", dict.fromkeys(INPUT_TOPIC_KEYS + OUTPUT_TOPIC_KEYS, _topic))
    names = list(topics.values())
    for key, name in topics.items():
        if names.count(name) > 1:
            raise ConfigError(f"kafka.topics.{key}: topic {name!r} is used twice")
    values["topics"] = topics
    return KafkaConfig(**values, **clients)


_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}\Z")


def _topic(key: str, value: Any) -> str:
    """A legal Kafka topic name: ASCII letters, digits, '.', '_' and '-', at most 249 (not '.' or '..')."""
    if not isinstance(value, str) or not _TOPIC.match(value) or value in (".", ".."):
        raise fail(key, "a Kafka topic name (letters, digits, '.', '_' or '-'; at most 249)", value)
    return value


def _locations(raw: Any) -> tuple[Location, ...]:
    if not isinstance(raw, list) or not raw:
        raise fail("locations", "a non-empty array of [[locations]] tables", raw)
    seen: set[str] = set()
    locations = []
    for i, entry in enumerate(raw):
        section = f"locations[{i}]"
        table = dict(parse_table(section, entry))
        optional = {k: table.pop(k) for k in ("opens", "closes") if k in table}
        unknown = sorted(set(table) - {"id", "type", "timezone", "priority"})
        if unknown:  # named here, so the hint lists the optional keys too
            raise ConfigError(f"{section}.{unknown[0]}: unknown key (known: id, type, timezone, priority, opens, closes)")
        values = take(
            table,
            section,
            {"id": parse_str, "type": parse_one_of("store", "warehouse"), "timezone": parse_timezone, "priority": parse_int(0)},
        )
        for k, v in optional.items():
            values[k] = time.fromisoformat(parse_hhmm(f"{section}.{k}", v))
        if values["id"] in seen:
            raise ConfigError(f"{section}.id: location {values['id']!r} is defined twice")
        seen.add(values["id"])
        locations.append(Location(**values))
    return tuple(locations)


def _inventory(raw: dict[str, Any], locations: tuple[Location, ...]) -> InventoryConfig:
    values = take(
        raw,
        "inventory",
        {
            "safety_stock": parse_table,
            "safety_stock_overrides": lambda key, v: v,
            "low_stock_threshold": parse_int(0),
            "pickup_expiry": parse_duration,
        },
    )
    safety = take(values["safety_stock"], "inventory.safety_stock", {"store": parse_int(0), "warehouse": parse_int(0)})
    known = {loc.id for loc in locations}
    overrides: dict[tuple[str, str], int] = {}
    entries = values["safety_stock_overrides"]
    if not isinstance(entries, list):
        raise fail("inventory.safety_stock_overrides", "an array of {sku, location_id, units} tables", entries)
    for i, entry in enumerate(entries):
        section = f"inventory.safety_stock_overrides[{i}]"
        item = take(parse_table(section, entry), section, {"sku": parse_str, "location_id": parse_str, "units": parse_int(0)})
        if item["location_id"] not in known:
            raise ConfigError(f"{section}.location_id: unknown location {item['location_id']!r}")
        overrides[(item["sku"], item["location_id"])] = item["units"]
    return InventoryConfig(safety, overrides, values["low_stock_threshold"], values["pickup_expiry"])


def _customers(raw: dict[str, Any]) -> CustomersConfig:
    values = take(raw, "customers", {"device_ttl": parse_positive_duration, "recent_views": parse_int(1, 1000), "tiers": parse_table})
    tiers = sorted(
        ((name, parse_money(f"customers.tiers.{name}", v, zero=True)) for name, v in values["tiers"].items()),
        key=lambda tier: tier[1],
    )
    if not tiers or tiers[0][1] != 0:
        raise ConfigError("customers.tiers: expected one tier with threshold 0 (the entry tier)")
    return CustomersConfig(values["device_ttl"], values["recent_views"], tuple(tiers))


_FRACTION = parse_number(0.0, 1.0)


def _churn(raw: dict[str, Any]) -> ChurnConfig:
    values = take(
        raw,
        "churn",
        {
            "horizon": parse_positive_duration,
            "tick": parse_positive_duration,
            "model": parse_one_of(*MODELS),
            "score_change": _FRACTION,
            "at_risk": _FRACTION,
            "lapsing": _FRACTION,
            "learn_every": parse_int(1, 52),
            "warmup": parse_int(0, 1_000_000),
            "republish": parse_positive_duration,
            "window": parse_positive_duration,
        },
    )
    if values["at_risk"] > values["lapsing"]:
        raise fail("churn.at_risk", f"a score <= churn.lapsing ({values['lapsing']})", raw["at_risk"])
    return ChurnConfig(
        values["horizon"], values["tick"], values["model"], values["score_change"], values["at_risk"], values["lapsing"],
        values["learn_every"], values["warmup"], values["republish"], values["window"],
    )  # fmt: skip


def _number(minimum: float, maximum: float = math.inf) -> Callable[[str, Any], float]:
    """A number above ``minimum``, at most ``maximum``."""
    return parse_number(minimum, maximum, exclusive_min=True)


def _skus(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise fail(key, "a list of SKUs (non-empty strings)", value)
    return tuple(value)


def _measures(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise fail(key, f"a list of {', '.join(ANOMALY_MEASURES)}", value)
    for i, measure in enumerate(value):
        if measure not in ANOMALY_MEASURES:
            raise fail(f"{key}[{i}]", f"one of {', '.join(ANOMALY_MEASURES)}", measure)
    return tuple(value)


def _count_period(key: str, value: Any) -> int:
    """The count tests' season: whole hours (their profile has one factor per hour), 1h to 7d."""
    period = parse_positive_duration(key, value)
    if period % 3_600_000 or period > 7 * 86_400_000:
        raise fail(key, "whole hours up to '7d' ('1d': a daily cycle, '7d': a weekly one)", value)
    return period


def _anomaly(raw: dict[str, Any]) -> AnomalyConfig:
    values = take(
        raw,
        "anomaly",
        {
            "count_measures": _measures,
            "context_measures": _measures,
            "count_nats": _number(0.0),
            "checkout_nats": _number(0.0),
            "count_drop": _number(0.0, 0.99),
            "count_spike": _number(1.0),
            "episode_quiet": parse_int(1, 10_000),
            "window": parse_positive_duration,
            "session_timeout": parse_positive_duration,
            "detector": parse_one_of(*ANOMALY_DETECTORS),
            "threshold": _number(0.0, 1.0),
            "lags": parse_int(1, 64),
            "sample_size": parse_int(1, 100_000),
            "warmup": parse_int(0, 100_000),
            "suppress_k": parse_int(1, 10_000),
            "idle_windows": parse_int(1, 1_000_000),
            "min_sessions": parse_int(0),
            "basket_z": _number(0.0),
            "basket_warmup": parse_int(0),
            "price_deviation": _number(0.0),
            "price_warmup": parse_int(0),
            "outlier_cooldown": parse_duration,
            "unpriced_skus": _skus,
            "count_period": _count_period,
        },
    )
    return AnomalyConfig(
        values["window"], values["session_timeout"], values["detector"], values["threshold"], values["lags"],
        values["sample_size"], values["warmup"], values["suppress_k"], values["idle_windows"],
        values["min_sessions"], values["basket_z"], values["basket_warmup"],
        values["price_deviation"], values["price_warmup"], values["outlier_cooldown"], values["count_measures"],
        values["context_measures"], values["count_nats"], values["checkout_nats"], values["count_drop"],
        values["count_spike"], values["episode_quiet"], values["unpriced_skus"], values["count_period"],
    )  # fmt: skip


def _parse_instant(key: str, value: Any) -> int:
    """Epoch ms of an RFC 3339 timestamp with offset, such as ``2000-01-01T00:00:00Z`` (quoted
    or as a TOML offset date-time)."""
    from datetime import datetime

    if isinstance(value, datetime) and value.tzinfo is not None:
        return round(value.timestamp() * 1000)
    if isinstance(value, str):
        try:
            return parse_ts(value)
        except Exception:  # the contract's own error, reported as a config error
            pass
    raise fail(key, "an RFC 3339 timestamp with offset such as '2000-01-01T00:00:00Z'", value)


#: Keys added after the first release, optional so that older config files keep working, with
#: the value a file without them gets (``check-config`` shows them with the rest).
OPTIONAL_KEYS: dict[str, dict[str, Any]] = {
    "time": {"live_lateness": "250ms"},
    "ingest": {"max_unknown_bytes": MAX_UNKNOWN_BYTES, "min_event_time": "2000-01-01T00:00:00Z", "max_future": "1d",
               "max_output_bytes": MAX_OUTPUT_BYTES},
    "anomaly": {"count_measures": ["orders", "sessions"], "context_measures": [], "count_nats": 3.0,
                "checkout_nats": 2.5, "count_drop": 0.2, "count_spike": 2.5, "episode_quiet": 4, "unpriced_skus": [],
                "count_period": "1d"},
}  # fmt: skip


def with_optional_keys(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` with the :data:`OPTIONAL_KEYS` it leaves out (a new document; ``raw`` is not changed)."""
    doc = dict(raw)
    for section, defaults in OPTIONAL_KEYS.items():
        if isinstance(doc.get(section), dict):
            doc[section] = {**copy.deepcopy(defaults), **doc[section]}
    return doc


def from_mapping(raw: Mapping[str, Any], source: Path | None = None) -> Config:
    """Build and validate a :class:`Config` from a parsed TOML document."""
    doc = with_optional_keys(raw)
    sections = (
        "kafka", "time", "ingest", "flow", "metrics", "currency", "locations", "inventory", "customers", "churn",
        "anomaly",
    )  # fmt: skip
    check_sections(doc, sections)
    time = take(
        parse_table("time", doc["time"]),
        "time",
        {
            "allowed_lateness": parse_duration, "idle_timeout": parse_duration, "dedupe_horizon": parse_duration,
            "live_lateness": parse_duration,
        },
    )  # fmt: skip
    if time["live_lateness"] > time["allowed_lateness"]:
        limit = f"a duration of at most time.allowed_lateness ({time['allowed_lateness']} ms)"
        raise fail("time.live_lateness", limit, f"{time['live_lateness']} ms")
    ingest = take(
        parse_table("ingest", doc["ingest"]),
        "ingest",
        {
            "max_event_bytes": parse_int(64, 16 * 1024 * 1024),
            "max_unknown_bytes": parse_int(0, 16 * 1024 * 1024),
            "min_event_time": _parse_instant,
            "max_future": parse_duration,
            "max_output_bytes": parse_int(MIN_OUTPUT_BYTES, 64 * 1024 * 1024),
        },
    )
    flow = take(
        parse_table("flow", doc["flow"]),
        "flow",
        {
            "shards": parse_int(1, 256),
            "workers_per_process": parse_int(1, 64),
            "snapshot_interval": parse_positive_duration,
            "backup_interval": parse_duration,
            "recovery_dir": parse_str,
            "recovery_partitions": parse_int(1, 1024),
        },
    )
    metrics = take(parse_table("metrics", doc["metrics"]), "metrics", {"host": parse_str, "port": parse_int(0, 65535)})
    currency = take(parse_table("currency", doc["currency"]), "currency", {"code": parse_str})["code"]
    locations = _locations(doc["locations"])
    recovery_dir = None if flow["recovery_dir"].strip().lower() == "none" else Path(flow["recovery_dir"])
    return Config(
        kafka=_kafka(parse_table("kafka", doc["kafka"])),
        time=TimeConfig(time["allowed_lateness"], time["idle_timeout"], time["dedupe_horizon"], time["live_lateness"]),
        ingest=IngestConfig(
            ingest["max_event_bytes"],
            ingest["max_unknown_bytes"],
            ingest["min_event_time"],
            ingest["max_future"],
            ingest["max_output_bytes"],
        ),
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
        inventory=_inventory(parse_table("inventory", doc["inventory"]), locations),
        customers=_customers(parse_table("customers", doc["customers"])),
        churn=_churn(parse_table("churn", doc["churn"])),
        anomaly=_anomaly(parse_table("anomaly", doc["anomaly"])),
        source=source,
    )


def _env_value(text: str) -> Any:
    """A TOML value (``5``, ``true``, ``["a"]``), else the text as a string. Text that parses
    as more than one TOML key (``4\nother = 1``) is one string, not a value and a stray key."""
    try:
        doc = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text
    return doc["v"] if len(doc) == 1 else text


#: Overrides of the promotions file, not of this one: ``CHANNELFLOW_PROMOTIONS__RULES__CART_REMINDER__DELAY=2h``.
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
    return from_mapping(*effective_config(path, environ))


def effective_config(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], Path]:
    """The config document as the flow will use it (file plus environment overrides), and its file."""
    env = os.environ if environ is None else environ
    file = Path(path or env.get("CHANNELFLOW_CONFIG") or DEFAULT_CONFIG)
    return with_optional_keys(apply_env(read_toml(file, "config"), env)), file


def load_promotions(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> PromotionSettings:
    """Read, overlay the environment onto and validate the promotions rules file.

    ``path`` defaults to ``$CHANNELFLOW_PROMOTIONS`` or the bundled
    ``promotions.toml``. Overrides are ``CHANNELFLOW_PROMOTIONS__`` and the
    dotted key in upper case with ``__`` between levels.
    """
    return promotions_from_mapping(*effective_promotions(path, environ))


def effective_promotions(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], Path]:
    """The rules document as the flow will use it (file plus environment overrides), and its file."""
    env = os.environ if environ is None else environ
    file = Path(path or env.get("CHANNELFLOW_PROMOTIONS") or DEFAULT_PROMOTIONS)
    return apply_env(read_toml(file, "promotions"), env, prefix=PROMOTIONS_ENV_PREFIX), file


def read_toml(file: Path, what: str) -> dict[str, Any]:
    """Parse a TOML file; a missing, unreadable or invalid one is a :class:`ConfigError` naming ``what``."""
    try:
        return tomllib.loads(file.read_text(encoding="utf-8-sig"))  # -sig: a leading byte-order mark is not TOML
    except FileNotFoundError:
        raise ConfigError(f"{what} file {file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} file {file} cannot be read as UTF-8 text: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} file {file} is not valid TOML: {exc}") from None
