"""Configuration (``channelflow.config``): the bundled file, env overrides, and errors that name their key."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import time
from pathlib import Path
from typing import Any

import pytest

from channelflow import cli
from channelflow.broker import EmbeddedBroker, free_port
from channelflow.config import (
    DEFAULT_CONFIG,
    INPUT_TOPIC_KEYS,
    OPTIONAL_KEYS,
    OUTPUT_TOPIC_KEYS,
    Config,
    ConfigError,
    Location,
    apply_env,
    from_mapping,
    load_config,
    read_toml,
)
from tests.conftest import make_config

ROOT = Path(__file__).resolve().parents[2]
Doc = dict[str, Any]


@pytest.fixture(scope="module")
def bundled_doc() -> Doc:
    return read_toml(DEFAULT_CONFIG, "config")


@pytest.fixture
def doc(bundled_doc: Doc) -> Doc:
    """A fresh deep copy of the bundled document to break."""
    return copy.deepcopy(bundled_doc)


def env(**overrides: str) -> dict[str, str]:
    """An environment with only ``CHANNELFLOW_<KEY>`` overrides (never the real one)."""
    return {f"CHANNELFLOW_{key}": value for key, value in overrides.items()}


def config_error(build: Callable[[], object]) -> str:
    with pytest.raises(ConfigError) as caught:
        build()
    return str(caught.value)


# -- the bundled config ----------------------------------------------------------


def test_the_bundled_config_loads() -> None:
    config = load_config(environ={})
    assert isinstance(config, Config)
    assert config.source == DEFAULT_CONFIG
    assert config.kafka.brokers == ("127.0.0.1:9092",)
    assert config.kafka.bootstrap == "127.0.0.1:9092"
    assert set(config.kafka.topics) == set(INPUT_TOPIC_KEYS + OUTPUT_TOPIC_KEYS)
    assert config.kafka.topics["inventory_updates"] == "inventory-updates"
    assert config.kafka.input_topics == {k: k for k in INPUT_TOPIC_KEYS}
    assert (config.kafka.topic_partitions, config.kafka.starting_offset, config.kafka.batch_size) == (4, "beginning", 1000)
    assert (config.time.allowed_lateness_ms, config.time.idle_timeout_ms, config.time.dedupe_horizon_ms) == (
        30_000,
        60_000,
        3_600_000,
    )
    assert config.ingest.max_event_bytes == 65536
    assert config.flow.shards == 8 and config.flow.workers_per_process == 1
    assert (config.flow.snapshot_interval_ms, config.flow.backup_interval_ms) == (10_000, 0)
    assert config.flow.recovery_dir == Path("state/recovery")
    assert config.flow.recovery_partitions == 4
    assert (config.metrics.host, config.metrics.port) == ("127.0.0.1", 9464)
    assert config.currency == "GBP"
    assert [loc.id for loc in config.locations] == ["W001", "W002", "S001", "S002", "S003", "S004", "S005", "S006"]
    assert config.locations[2] == Location("S001", "store", "Europe/London", 10, time(9), time(21))
    assert config.locations[0].opens is None
    assert config.inventory.safety_stock == {"store": 1, "warehouse": 5}
    assert config.inventory.safety_stock_overrides == {}
    assert config.inventory.low_stock_threshold == 5
    assert config.inventory.pickup_expiry_ms == 3 * 86_400_000


def test_config_path_comes_from_argument_then_env(tmp_path: Path) -> None:
    copy_path = tmp_path / "copy.toml"
    copy_path.write_text(DEFAULT_CONFIG.read_text(encoding="utf-8").replace('"GBP"', '"EUR"'), encoding="utf-8")
    assert load_config(environ={"CHANNELFLOW_CONFIG": str(copy_path)}).currency == "EUR"
    assert load_config(copy_path, environ={}).source == copy_path
    assert load_config(DEFAULT_CONFIG, environ={"CHANNELFLOW_CONFIG": str(copy_path)}).currency == "GBP"


# -- environment overrides ---------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "read", "expected"),
    [
        ("KAFKA__BROKERS", "h1:9092,h2:9093", lambda c: c.kafka.brokers, ("h1:9092", "h2:9093")),
        ("KAFKA__BROKERS", "h1:9092, h2:9093 ", lambda c: c.kafka.brokers, ("h1:9092", "h2:9093")),
        ("KAFKA__BROKERS", "kafka:9092", lambda c: c.kafka.bootstrap, "kafka:9092"),
        ("KAFKA__BROKERS", '["a:1", "b:2"]', lambda c: c.kafka.brokers, ("a:1", "b:2")),
        ("KAFKA__BROKERS", "[::1]:9092", lambda c: c.kafka.brokers, ("[::1]:9092",)),
        ("TIME__ALLOWED_LATENESS", "10m", lambda c: c.time.allowed_lateness_ms, 600_000),
        ("TIME__ALLOWED_LATENESS", "500ms", lambda c: c.time.allowed_lateness_ms, 500),
        ("TIME__LIVE_LATENESS", "100ms", lambda c: c.time.live_lateness_ms, 100),
        ("TIME__IDLE_TIMEOUT", "1.5h", lambda c: c.time.idle_timeout_ms, 5_400_000),
        ("TIME__DEDUPE_HORIZON", "90d", lambda c: c.time.dedupe_horizon_ms, 90 * 86_400_000),
        ("TIME__DEDUPE_HORIZON", "45", lambda c: c.time.dedupe_horizon_ms, 45_000),
        ("TIME__DEDUPE_HORIZON", "2.5", lambda c: c.time.dedupe_horizon_ms, 2_500),
        ("INVENTORY__PICKUP_EXPIRY", " 2 d ", lambda c: c.inventory.pickup_expiry_ms, 2 * 86_400_000),
        ("FLOW__SHARDS", "16", lambda c: c.flow.shards, 16),
        ("INGEST__MAX_EVENT_BYTES", "1048576", lambda c: c.ingest.max_event_bytes, 1_048_576),
        ("METRICS__PORT", "0", lambda c: c.metrics.port, 0),
        ("METRICS__HOST", "0.0.0.0", lambda c: c.metrics.host, "0.0.0.0"),
        ("KAFKA__STARTING_OFFSET", "end", lambda c: c.kafka.starting_offset, "end"),
        ("KAFKA__TOPICS__POS", "pos-eu", lambda c: c.kafka.topics["pos"], "pos-eu"),
        ("KAFKA__TOPICS__POS", "pos-eu", lambda c: c.kafka.input_topics["pos-eu"], "pos"),
        ("KAFKA__TOPICS__DEAD_LETTERS", "dlq", lambda c: c.kafka.topics["dead_letters"], "dlq"),
        ("KAFKA__TOPICS__POS", '"1234"', lambda c: c.kafka.topics["pos"], "1234"),  # quoted: a string
        ("FLOW__RECOVERY_DIR", "none", lambda c: c.flow.recovery_dir, None),
        ("FLOW__RECOVERY_DIR", "/var/lib/cf", lambda c: c.flow.recovery_dir, Path("/var/lib/cf")),
        ("CURRENCY__CODE", "EUR", lambda c: c.currency, "EUR"),
        ("INVENTORY__SAFETY_STOCK__STORE", "3", lambda c: c.inventory.safety_stock["store"], 3),
        ("KAFKA__CONSUMER__FETCH__WAIT__MAX__MS", "50", lambda c: c.kafka.consumer, {"fetch.wait.max.ms": 50}),
        ("KAFKA__CLIENT__SASL__PASSWORD", "s3cret", lambda c: c.kafka.client, {"sasl.password": "s3cret"}),
        ("KAFKA__PRODUCER__LINGER__MS", "20", lambda c: c.kafka.producer, {"linger.ms": 20}),
        (
            "INVENTORY__SAFETY_STOCK_OVERRIDES",
            '[{sku = "SKU-1", location_id = "S001", units = 7}]',
            lambda c: c.inventory.safety_stock_overrides,
            {("SKU-1", "S001"): 7},
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_env_override(key: str, value: str, read: Callable[[Config], Any], expected: Any) -> None:
    assert read(load_config(environ=env(**{key: value}))) == expected


def test_env_overrides_ignore_other_variables(bundled_doc: Doc) -> None:
    environ = {"CHANNELFLOW_CONFIG": "x", "CHANNELFLOWX__A": "1", "KAFKA__BROKERS": "x:1", "PATH": "/bin"}
    assert apply_env(copy.deepcopy(bundled_doc), environ) == bundled_doc


def test_env_overrides_do_not_change_other_keys(bundled_doc: Doc) -> None:
    changed = apply_env(copy.deepcopy(bundled_doc), env(KAFKA__TOPICS__POS="pos-eu"))
    expected = copy.deepcopy(bundled_doc)
    expected["kafka"]["topics"]["pos"] = "pos-eu"
    assert changed == expected


# -- errors name their key ----------------------------------------------------------


def _set(*path: str | int, value: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        node: Any = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return mutate


def _drop(*path: str | int) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        node: Any = doc
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return mutate


BAD_DOCS: list[tuple[str, Callable[[Doc], None], str]] = [
    ("unknown key", _set("kafka", "brokerz", value=["a:1"]), "kafka.brokerz"),
    ("unknown nested key", _set("kafka", "topics", "orders", value="orders"), "kafka.topics.orders"),
    ("unknown location key", _set("locations", 0, "city", value="London"), "locations[0].city"),
    ("missing key", _drop("time", "idle_timeout"), "time.idle_timeout"),
    ("missing topic", _drop("kafka", "topics", "alerts"), "kafka.topics.alerts"),
    ("missing safety stock", _drop("inventory", "safety_stock", "warehouse"), "inventory.safety_stock.warehouse"),
    ("unknown section", _set("extras", value={"a": 1}), "extras"),
    ("missing section", _drop("metrics"), "metrics"),
    ("section not a table", _set("time", value=5), "time"),
    ("bad duration", _set("time", "allowed_lateness", value="soon"), "time.allowed_lateness"),
    ("bad duration unit", _set("time", "dedupe_horizon", value="5w"), "time.dedupe_horizon"),
    ("negative duration", _set("time", "idle_timeout", value=-1), "time.idle_timeout"),
    ("bool duration", _set("inventory", "pickup_expiry", value=True), "inventory.pickup_expiry"),
    ("zero snapshot", _set("flow", "snapshot_interval", value="0s"), "flow.snapshot_interval"),
    ("int as string", _set("flow", "shards", value="8"), "flow.shards"),
    ("int as float", _set("kafka", "batch_size", value=1.5), "kafka.batch_size"),
    ("int as bool", _set("metrics", "port", value=True), "metrics.port"),
    ("int too small", _set("flow", "shards", value=0), "flow.shards"),
    ("int too large", _set("metrics", "port", value=70000), "metrics.port"),
    ("tiny max bytes", _set("ingest", "max_event_bytes", value=10), "ingest.max_event_bytes"),
    ("negative threshold", _set("inventory", "low_stock_threshold", value=-1), "inventory.low_stock_threshold"),
    ("bad broker", _set("kafka", "brokers", value=["localhost"]), "kafka.brokers[0]"),
    ("broker without port", _set("kafka", "brokers", value=["a:1", "kafka:"]), "kafka.brokers[1]"),
    ("broker without host", _set("kafka", "brokers", value=[":9092"]), "kafka.brokers[0]"),
    ("broker not a string", _set("kafka", "brokers", value=[9092]), "kafka.brokers[0]"),
    ("no brokers", _set("kafka", "brokers", value=[]), "kafka.brokers"),
    ("brokers a table", _set("kafka", "brokers", value={"a": 1}), "kafka.brokers"),
    ("bad starting offset", _set("kafka", "starting_offset", value="middle"), "kafka.starting_offset"),
    ("empty topic name", _set("kafka", "topics", "pos", value=""), "kafka.topics.pos"),
    ("topic name with a space", _set("kafka", "topics", "pos", value="pos "), "kafka.topics.pos"),
    ("topic name Kafka refuses", _set("kafka", "topics", "alerts", value="my/alerts"), "kafka.topics.alerts"),
    ("infinite tier", _set("customers", "tiers", "gold", value=float("inf")), "customers.tiers.gold"),
    ("NaN tier", _set("customers", "tiers", "gold", value=float("nan")), "customers.tiers.gold"),
    ("tier of 4 decimals", _set("customers", "tiers", "gold", value=0.0001), "customers.tiers.gold"),
    ("tier past the money limit", _set("customers", "tiers", "gold", value=1e300), "customers.tiers.gold"),
    ("opening time with a newline", _set("locations", 2, "opens", value="09:00\n"), "locations[2].opens"),
    ("duration in fullwidth digits", _set("time", "allowed_lateness", value="\uff15m"), "time.allowed_lateness"),
    ("unknown location type", _set("locations", 1, "type", value="shop"), "locations[1].type"),
    ("bad timezone", _set("locations", 2, "timezone", value="Mars/Olympus_Mons"), "locations[2].timezone"),
    ("bad opening time", _set("locations", 2, "opens", value="9am"), "locations[2].opens"),
    ("bad closing time", _set("locations", 3, "closes", value="24:00"), "locations[3].closes"),
    ("duplicate location id", _set("locations", 3, "id", value="W001"), "locations[3].id"),
    ("missing location id", _drop("locations", 0, "id"), "locations[0].id"),
    ("negative priority", _set("locations", 0, "priority", value=-1), "locations[0].priority"),
    ("no locations", _set("locations", value=[]), "locations"),
    ("location not a table", _set("locations", 0, value="W001"), "locations[0]"),
    ("empty currency", _set("currency", "code", value=" "), "currency.code"),
    ("empty recovery dir", _set("flow", "recovery_dir", value=""), "flow.recovery_dir"),
    (
        "safety-stock override for an unknown location",
        _set("inventory", "safety_stock_overrides", value=[{"sku": "SKU-1", "location_id": "S999", "units": 2}]),
        "inventory.safety_stock_overrides[0].location_id",
    ),
    (
        "safety-stock override with a bad key",
        _set("inventory", "safety_stock_overrides", value=[{"sku": "SKU-1", "location": "S001", "units": 2}]),
        "inventory.safety_stock_overrides[0].location",
    ),
    (
        "safety-stock overrides not an array",
        _set("inventory", "safety_stock_overrides", value={"sku": "SKU-1"}),
        "inventory.safety_stock_overrides",
    ),
]


# -- [kafka.client], [kafka.consumer], [kafka.producer]: librdkafka properties ---------------


def test_consumer_properties_are_optional_and_read_as_dotted_names(doc: Doc) -> None:
    assert "consumer" not in doc["kafka"] or from_mapping(doc).kafka.consumer == doc["kafka"]["consumer"]
    doc["kafka"].pop("consumer", None)
    assert from_mapping(copy.deepcopy(doc)).kafka.consumer == {}
    # A TOML dotted key and a quoted one name the same property.
    doc["kafka"]["consumer"] = {"fetch": {"wait": {"max": {"ms": 50}}}, "client.rack": "eu-1", "check.crcs": True}
    assert from_mapping(doc).kafka.consumer == {"fetch.wait.max.ms": 50, "client.rack": "eu-1", "check.crcs": True}


def test_consumer_properties_from_a_file(tmp_path: Path) -> None:
    text = DEFAULT_CONFIG.read_text(encoding="utf-8").replace(
        "[kafka.topics]", "[kafka.consumer]\nfetch.wait.max.ms = 20\n\n[kafka.topics]", 1
    )
    (tmp_path / "c.toml").write_text(text, encoding="utf-8")
    assert load_config(tmp_path / "c.toml", environ={}).kafka.consumer["fetch.wait.max.ms"] == 20


def test_client_and_producer_properties_are_optional_and_read_as_dotted_names(doc: Doc) -> None:
    for table in ("client", "producer"):
        doc["kafka"].pop(table, None)
    config = from_mapping(copy.deepcopy(doc))
    assert config.kafka.client == {} and config.kafka.producer == {}
    doc["kafka"]["client"] = {"security": {"protocol": "SASL_SSL"}, "sasl.mechanism": "SCRAM-SHA-512",
                              "sasl": {"username": "cf", "password": "p"}, "client.id": "channelflow"}  # fmt: skip
    doc["kafka"]["producer"] = {"compression.type": "zstd", "linger": {"ms": 20}}
    config = from_mapping(doc)
    assert config.kafka.client == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                                   "sasl.username": "cf", "sasl.password": "p", "client.id": "channelflow"}  # fmt: skip
    assert config.kafka.producer == {"compression.type": "zstd", "linger.ms": 20}


@pytest.mark.parametrize(
    ("table", "properties", "named"),
    [
        ("client", {"fetch.wait.max.ms": 50}, "kafka.client.fetch.wait.max.ms: "),  # a consumer's: a producer ignores it
        ("client", {"linger.ms": 5}, "kafka.client.linger.ms: "),  # a producer's: a consumer ignores it
        ("client", {"group.id": "mine"}, "kafka.client.group.id: set by channelflow itself"),
        ("client", {"message.max.bytes": 10}, "kafka.client.message.max.bytes: set by channelflow itself"),
        ("client", {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}, "kafka.client.security.protocol: "),
        ("client", {"sasl.mechanism": "MAGIC"}, "kafka.client.sasl.mechanism: "),
        ("producer", {"fetch.wait.max.ms": 50}, "kafka.producer.fetch.wait.max.ms: "),
        ("producer", {"compression.type": "rar"}, "kafka.producer.compression.type: Invalid value"),
        ("producer", {"message.max.bytes": 10}, "kafka.producer.message.max.bytes: set by channelflow itself"),
        ("producer", {"bootstrap.servers": "a:1"}, "kafka.producer.bootstrap.servers: set by channelflow itself"),
        ("producer", [1], "kafka.producer: expected a table"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_a_bad_client_or_producer_property_names_its_key(doc: Doc, table: str, properties: Any, named: str) -> None:
    doc["kafka"][table] = properties
    message = config_error(lambda: from_mapping(doc))
    assert message.startswith(named), message


@pytest.mark.parametrize(
    ("properties", "named"),
    [
        ({"fetch.wat.max.ms": 1}, "kafka.consumer.fetch.wat.max.ms: No such configuration property"),
        ({"fetch.wait.max.ms": -1}, "kafka.consumer.fetch.wait.max.ms: "),
        ({"fetch.wait.max.ms": "soon"}, "kafka.consumer.fetch.wait.max.ms: Invalid value"),
        ({"linger.ms": 5}, "kafka.consumer.linger.ms: "),  # a producer property: librdkafka would ignore it
        ({"enable.partition.eof": False}, "kafka.consumer.enable.partition.eof: set by channelflow itself"),
        ({"bootstrap": {"servers": "a:1"}}, "kafka.consumer.bootstrap.servers: set by channelflow itself"),
        ({"client.rack": ["a"]}, "kafka.consumer.client.rack: expected a string, number or boolean"),
        ({"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}, "kafka.consumer.security.protocol: "),
        ("fast", "kafka.consumer: expected a table"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_a_bad_consumer_property_names_its_key(doc: Doc, properties: Any, named: str) -> None:
    doc["kafka"]["consumer"] = properties
    message = config_error(lambda: from_mapping(doc))
    assert message.startswith(named), message


@pytest.mark.parametrize(("mutate", "key"), [case[1:] for case in BAD_DOCS], ids=[case[0] for case in BAD_DOCS])
def test_a_bad_document_names_its_key(doc: Doc, mutate: Callable[[Doc], None], key: str) -> None:
    mutate(doc)
    message = config_error(lambda: from_mapping(doc))
    assert message.split(":")[0] == key, message


def test_duplicate_topic_names_name_the_topic(doc: Doc) -> None:
    doc["kafka"]["topics"]["alerts"] = "pos"
    message = config_error(lambda: from_mapping(doc))
    assert message.startswith(("kafka.topics.pos:", "kafka.topics.alerts:")), message
    assert "'pos'" in message and "twice" in message


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("TIME__ALLOWED_LATENESS", "soon", "time.allowed_lateness: expected a duration"),
        ("TIME__ALLOWED_LATENESS", "-5", "time.allowed_lateness:"),
        ("TIME__LIVE_LATENESS", "1m", "time.live_lateness: expected a duration of at most time.allowed_lateness"),
        ("FLOW__SHARDS", "many", "flow.shards: expected an integer, got 'many'"),
        ("FLOW__SHARDS", "0", "flow.shards: expected an integer 1..256, got 0"),
        ("KAFKA__BATCH_SIZE", "1.5", "kafka.batch_size:"),
        ("METRICS__PORT", "true", "metrics.port:"),
        ("KAFKA__BROKERS", "localhost", "kafka.brokers[0]: expected 'host:port', got 'localhost'"),
        ("KAFKA__BROKERS", "a:1,,b:2", "kafka.brokers[1]:"),
        ("KAFKA__BROKERS", "", "kafka.brokers[0]:"),
        ("KAFKA__BROKER", "a:1", "kafka.broker: unknown key"),
        ("KAFKA__TOPICS__ORDERS", "orders", "kafka.topics.orders: unknown key"),
        ("KAFKA__TOPICS__POS", "clickstream", "kafka.topics."),
        ("KAFKA__TOPICS__POS", "1234", "kafka.topics.pos: expected a Kafka topic name"),
        ("FOO__BAR", "1", "foo: unknown section"),
        ("KAFKA__BROKERS__HOST", "x", "CHANNELFLOW_KAFKA__BROKERS__HOST:"),
        ("LOCATIONS__ID", "x", "CHANNELFLOW_LOCATIONS__ID:"),
        ("INVENTORY__SAFETY_STOCK_OVERRIDES", '[{sku = "A", location_id = "X9", units = 1}]', "inventory.safety_stock_overrides[0].location_id:"),
        ("KAFKA__CONSUMER__FETCH__WAIT__MAX__MS", "soon", "kafka.consumer.fetch.wait.max.ms: Invalid value"),
        ("KAFKA__CONSUMER__GROUP__ID", "mine", "kafka.consumer.group.id: set by channelflow itself"),
        ("KAFKA__CLIENT__ISOLATION__LEVEL", "read_uncommitted", "kafka.client.isolation.level: "),
    ],
    ids=lambda v: v[:40],
)
def test_a_bad_env_override_names_its_key(key: str, value: str, named: str) -> None:
    message = config_error(lambda: load_config(environ=env(**{key: value})))
    assert message.startswith(named), message


def test_an_invalid_toml_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[kafka\nbrokers = 1\n", encoding="utf-8")
    message = config_error(lambda: load_config(bad, environ={}))
    assert str(bad) in message and "not valid TOML" in message and "line 1" in message


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    message = config_error(lambda: load_config(missing, environ={}))
    assert message == f"config file {missing} does not exist"
    message = config_error(lambda: load_config(environ={"CHANNELFLOW_CONFIG": str(missing)}))
    assert str(missing) in message


def test_a_bad_key_in_a_file_names_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(DEFAULT_CONFIG.read_text(encoding="utf-8").replace('allowed_lateness = "30s"', 'allowed_lateness = "soon"'))
    message = config_error(lambda: load_config(bad, environ={}))
    assert message == "time.allowed_lateness: expected a duration such as '30s', '5m', '2h' or '90d', got 'soon'"


# -- bugs found and fixed ----------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "1e400"])
def test_an_infinite_duration_names_its_key(value: str) -> None:
    message = config_error(lambda: load_config(environ=env(TIME__ALLOWED_LATENESS=value)))
    assert message.startswith("time.allowed_lateness:")


def test_a_directory_as_config_file_names_the_path(tmp_path: Path) -> None:
    assert str(tmp_path) in config_error(lambda: load_config(tmp_path, environ={}))


def test_a_non_utf8_config_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(DEFAULT_CONFIG.read_bytes().replace(b'"GBP"', b'"\xa3"'))
    assert str(bad) in config_error(lambda: load_config(bad, environ={}))


def test_from_mapping_does_not_change_its_input(doc: Doc) -> None:
    before = copy.deepcopy(doc)
    first = from_mapping(doc)
    assert doc == before
    assert from_mapping(doc) == first


def test_an_unknown_location_key_lists_the_optional_ones_too(doc: Doc) -> None:
    doc["locations"][0]["city"] = "London"
    assert "opens, closes" in config_error(lambda: from_mapping(doc))


def test_an_env_value_that_reads_as_two_toml_keys_is_one_string() -> None:
    message = config_error(lambda: load_config(environ=env(FLOW__SHARDS="4\nbogus = 1")))
    assert message == "flow.shards: expected an integer, got '4\\nbogus = 1'"


def test_a_config_file_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    marked = tmp_path / "bom.toml"
    marked.write_bytes(b"\xef\xbb\xbf" + DEFAULT_CONFIG.read_bytes())
    assert load_config(marked, environ={}) == load_config(DEFAULT_CONFIG, environ={})


@pytest.mark.parametrize("broker", ["kafka:70000", "kafka:\u00b2", "kafka:\uff19\uff10\uff19\uff12"], ids=["70000", "superscript-2", "fullwidth-9092"])
def test_a_broker_port_must_be_a_tcp_port(doc: Doc, broker: str) -> None:
    doc["kafka"]["brokers"] = [broker]
    assert config_error(lambda: from_mapping(doc)).startswith("kafka.brokers[0]:")


# -- the command line ---------------------------------------------------------------------


def _bad_config(tmp_path: Path) -> Path:
    bad = tmp_path / "bad.toml"
    bad.write_text(DEFAULT_CONFIG.read_text(encoding="utf-8").replace("batch_size = 1000", "batch_size = 1000\nbrokerz = 1"))
    return bad


def test_cli_check_config_names_the_bad_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In process, without the tool subcommands (their modules are built elsewhere)."""
    monkeypatch.setattr(cli, "_TOOLS", {})
    for name in [n for n in os.environ if n.startswith("CHANNELFLOW_")]:
        monkeypatch.delenv(name)
    assert cli.main(["--config", str(_bad_config(tmp_path)), "check-config"]) == 2
    err = capsys.readouterr().err
    assert "invalid config: kafka.brokerz: unknown key" in err
    assert cli.main(["--config", str(DEFAULT_CONFIG), "check-config"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# config: {DEFAULT_CONFIG}\n[kafka]\n") and "\n# promotions: " in out
    # -c after the command too; JSON on request, as one document.
    assert cli.main(["check-config", "-c", str(DEFAULT_CONFIG), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["config"]["file"] == str(DEFAULT_CONFIG) and shown["config"]["values"]["currency"]["code"]
    assert set(shown["promotions"]["values"]) == {"policy", "rules"}


def test_check_config_hides_the_secrets_of_kafka_clients(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_TOOLS", {})
    for name in [n for n in os.environ if n.startswith("CHANNELFLOW_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CHANNELFLOW_KAFKA__CLIENT__SECURITY__PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CHANNELFLOW_KAFKA__CLIENT__SASL__MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("CHANNELFLOW_KAFKA__CLIENT__SASL__USERNAME", "cf")
    monkeypatch.setenv("CHANNELFLOW_KAFKA__CLIENT__SASL__PASSWORD", "hunter2")
    monkeypatch.setenv("CHANNELFLOW_KAFKA__PRODUCER__SSL__KEY__PASSWORD", "s3cret")
    for fmt in ("toml", "json"):
        assert cli.main(["check-config", "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert "hunter2" not in out and "s3cret" not in out
        assert "SCRAM-SHA-512" in out and out.count("(hidden)") == 2
    assert load_config().kafka.client["sasl.password"] == "hunter2"  # hidden only where shown


def test_a_bad_promotions_override_fails_before_anything_is_printed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_TOOLS", {})
    monkeypatch.setenv("CHANNELFLOW_PROMOTIONS__RULES__CART_REMINDER__DELAY", "soon")
    assert cli.main(["check-config"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "rules.cart_reminder.delay" in captured.err


def test_cli_process_exits_non_zero_naming_the_key(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELFLOW_")}
    done = subprocess.run(
        [sys.executable, "-m", "channelflow.cli", "--config", str(_bad_config(tmp_path)), "check-config"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "kafka.brokerz" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.integration
def test_run_dry_run_checks_the_topics_and_prints_the_stages(broker: EmbeddedBroker, tmp_path: Path) -> None:
    config = make_config(broker, partitions=1)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELFLOW_")}
    environ.update({f"CHANNELFLOW_KAFKA__TOPICS__{k.upper()}": v for k, v in config.kafka.topics.items()})
    environ["CHANNELFLOW_KAFKA__BROKERS"] = broker.bootstrap

    def dry_run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "channelflow.cli", "run", "--dry-run"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip

    done = dry_run(environ)
    assert done.returncode == 0, done.stderr
    for stage in ("sequence", "inventory", "identity", "customers", "churn", "anomaly", "promotions", "promotion_gate"):
        assert f"\n{stage} " in f"\n{done.stdout}"
    missing = dry_run({**environ, "CHANNELFLOW_KAFKA__TOPICS__ALERTS": "no-such-topic"})
    assert missing.returncode == 2 and "no-such-topic" in missing.stderr


def _run_without_a_broker(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``channelflow run ARGS`` against a loopback port where no broker listens."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELFLOW_")}
    environ.update({"CHANNELFLOW_KAFKA__BROKERS": f"127.0.0.1:{free_port()}", "CHANNELFLOW_FLOW__RECOVERY_DIR": "none",
                    "CHANNELFLOW_METRICS__PORT": "0", **env})  # fmt: skip
    return subprocess.run([sys.executable, "-m", "channelflow.cli", "run", *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


@pytest.mark.parametrize("args", [("--dry-run",), ("--until-end",), ("--create-topics", "--dry-run")])
def test_run_names_a_bad_rules_file_before_asking_the_brokers(args: tuple[str, ...]) -> None:
    done = _run_without_a_broker(*args, CHANNELFLOW_PROMOTIONS__RULES__CART_REMINDER__DELAY="0s")
    assert done.returncode == 2, done.stderr
    assert "invalid config: rules.cart_reminder.delay: expected a duration > 0" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow  # librdkafka asks the missing broker for 30 s before it gives up
def test_run_says_when_the_brokers_cannot_be_reached() -> None:
    done = _run_without_a_broker("--dry-run")
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("channelflow: Kafka: ") and "kafka.brokers" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_check_config_shows_the_optional_keys_a_file_leaves_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_TOOLS", {})
    older = tmp_path / "older.toml"
    older.write_text(DEFAULT_CONFIG.read_text(encoding="utf-8").replace('live_lateness = "250ms"\n', ""))
    assert "live_lateness" not in older.read_text(encoding="utf-8")
    assert cli.main(["--config", str(older), "check-config", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)["config"]["values"]
    assert shown["time"]["live_lateness"] == "250ms"
    assert set(shown["ingest"]) >= set(OPTIONAL_KEYS["ingest"]) and set(shown["anomaly"]) >= set(OPTIONAL_KEYS["anomaly"])


def test_the_demo_takes_a_rate_or_a_speed_not_both(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli._parser().parse_args(["demo", "--rate", "100", "--speed", "10"])
    assert stopped.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
