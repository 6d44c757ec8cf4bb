"""The ``[anomaly]`` config section: bundled values, environment overrides, and errors that name their key."""

from __future__ import annotations

from typing import Any

import pytest

from channelflow.config import (
    ANOMALY_DETECTORS,
    DEFAULT_CONFIG,
    ConfigError,
    from_mapping,
    load_config,
    read_toml,
)
from flows.anomaly_wiring import anomaly_settings
from operators.anomalies.detectors import DETECTORS
from operators.anomalies.domain import Anomalies

Doc = dict[str, Any]


@pytest.fixture
def doc() -> Doc:
    return read_toml(DEFAULT_CONFIG, "config")


def error_of(doc: Doc) -> str:
    with pytest.raises(ConfigError) as caught:
        from_mapping(doc)
    return str(caught.value)


def test_bundled_anomaly_section() -> None:
    anomaly = load_config(environ={}).anomaly
    assert anomaly.window_ms == 15 * 60_000
    assert anomaly.session_timeout_ms == 30 * 60_000
    assert anomaly.detector == "kpi" and anomaly.threshold == 0.75
    assert anomaly.outlier_cooldown_ms == 3_600_000
    assert anomaly.price_deviation == 0.5


def test_environment_overrides_anomaly_keys() -> None:
    config = load_config(environ={"CHANNELFLOW_ANOMALY__WINDOW": "5m", "CHANNELFLOW_ANOMALY__DETECTOR": "hst",
                                  "CHANNELFLOW_ANOMALY__THRESHOLD": "0.9"})
    assert (config.anomaly.window_ms, config.anomaly.detector, config.anomaly.threshold) == (300_000, "hst", 0.9)


def test_unpriced_skus_from_the_environment_or_none_when_a_file_leaves_them_out(doc: Doc) -> None:
    config = load_config(environ={"CHANNELFLOW_ANOMALY__UNPRICED_SKUS": '["POST", "BANK CHARGES"]'})
    assert anomaly_settings(config).unpriced_skus == frozenset({"POST", "BANK CHARGES"})
    del doc["anomaly"]["unpriced_skus"]  # a file written before the key
    assert from_mapping(doc).anomaly.unpriced_skus == ()


def test_config_detectors_are_the_operators_detectors() -> None:
    assert set(ANOMALY_DETECTORS) == set(DETECTORS)


def test_a_weekly_count_period_reaches_the_count_tests(doc: Doc) -> None:
    """The count tests' profile: one factor per hour of the day (bundled), or of the week."""
    assert anomaly_settings(from_mapping(doc)).count_period_ms == 86_400_000
    doc["anomaly"]["count_period"] = "7d"
    settings = anomaly_settings(from_mapping(doc))
    assert settings.count_period_ms == 7 * 86_400_000
    assert Anomalies(settings)._count_test("orders:web").period_ms == 7 * 86_400_000


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("window", "soon", "anomaly.window: expected a duration"),
        ("window", "0s", "anomaly.window: expected a duration > 0"),
        ("detector", "magic", "anomaly.detector: expected one of 'kpi'"),
        ("threshold", "high", "anomaly.threshold: expected a number > 0 and <= 1, got 'high'"),
        ("threshold", 0, "anomaly.threshold: expected a number > 0 and <= 1, got 0"),
        ("threshold", 1.5, "anomaly.threshold: expected a number > 0 and <= 1, got 1.5"),
        ("lags", True, "anomaly.lags: expected an integer"),
        ("idle_windows", 0, "anomaly.idle_windows: expected an integer"),
        ("suppress_k", 0, "anomaly.suppress_k: expected an integer 1..10000"),
        ("price_deviation", "50%", "anomaly.price_deviation: expected a number"),
        ("outlier_cooldown", "often", "anomaly.outlier_cooldown: expected a duration"),
        ("count_measures", ["orders", "profit"], "anomaly.count_measures[1]: expected one of orders"),
        ("count_drop", 1.5, "anomaly.count_drop: expected a number > 0 and <= 0.99, got 1.5"),
        ("unpriced_skus", "POST", "anomaly.unpriced_skus: expected a list of SKUs"),
        ("unpriced_skus", ["POST", ""], "anomaly.unpriced_skus: expected a list of SKUs"),
        ("count_period", "90m", "anomaly.count_period: expected whole hours up to '7d'"),
        ("count_period", "8d", "anomaly.count_period: expected whole hours up to '7d'"),
        ("count_period", "0s", "anomaly.count_period: expected a duration > 0"),
    ],
)
def test_bad_values_name_their_key(doc: Doc, key: str, value: Any, message: str) -> None:
    doc["anomaly"][key] = value
    assert error_of(doc).startswith(message)


def test_unknown_and_missing_keys_and_section(doc: Doc) -> None:
    doc["anomaly"]["windw"] = "1m"
    assert error_of(doc).startswith("anomaly.windw: unknown key")
    del doc["anomaly"]["windw"]
    del doc["anomaly"]["basket_z"]
    assert error_of(doc) == "anomaly.basket_z: missing"
    del doc["anomaly"]
    assert error_of(doc) == "anomaly: missing section"


def test_settings_take_store_hours_from_locations() -> None:
    settings = anomaly_settings(load_config(environ={}))
    assert settings.window_ms == 15 * 60_000 and settings.detector == "kpi"
    assert sorted(settings.store_hours) == ["S001", "S002", "S003", "S004", "S005", "S006"]
    london = settings.store_hours["S001"]
    assert london.timezone == "Europe/London"
    # 2026-01-05 (winter, UTC = London time): open 09:00-21:00.
    assert london.is_open(1_767_603_600_000, 1_767_603_660_000)  # 09:00
    assert not london.is_open(1_767_600_000_000, 1_767_600_060_000)  # 08:00
