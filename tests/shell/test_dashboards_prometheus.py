"""Anomaly alerts, every Grafana panel query and every Prometheus alert rule, end to end: simulated
traffic with injected anomalies through the real broker and the real flow, scraped by a real
Prometheus server (Debian's ``prometheus``) that loads config/prometheus/alerts.yml; each dashboard
expression and each rule evaluated through its HTTP API."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import start_http_server
from ruamel.yaml import YAML

from channelflow.broker import EmbeddedBroker, free_port
from channelflow.config import Config
from channelflow.simulator import DEFAULT_LOCATIONS, SimulationSettings, simulate
from flows.metrics import INFO
from tests.conftest import make_config
from tests.flow_harness import closing_events, produce_events, read_json, run_to_end

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "config" / "grafana" / "dashboards"
PROMETHEUS = ROOT / "config" / "prometheus"
HOUR_MS = 3_600_000
# What Grafana puts in place of the dashboard variables here: every channel and store (the "All"
# value is the regex .*), and a range that covers the whole run for $__range ("today so far").
VARIABLES = {"channel": ".*", "store": ".*", "__range": "1h"}
WEEK_AGO = " offset 7d"


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def dashboard_expressions() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL) of every target of every panel."""
    return [
        (name, panel["title"], target["expr"])
        for name, board in dashboards().items()
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


def substitute(expr: str, **values: str) -> str:
    """``expr`` with Grafana's ``$name`` variables replaced by ``values`` (default: VARIABLES)."""
    values = {**VARIABLES, **values}
    result = re.sub(r"\$(\w+)", lambda m: values[m.group(1)], expr)
    assert "$" not in result, expr
    return result


def alert_rules() -> list[dict[str, Any]]:
    doc = YAML(typ="safe").load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    """The instant vector of ``expr`` now; fails on any error."""
    answer = get_json(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    assert answer["status"] == "success", (expr, answer)
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


@dataclass
class Run:
    config: Config
    truth: list[dict[str, Any]]
    log: list[dict[str, Any]]
    prometheus: str  # base URL


def sightings(log: list[dict[str, Any]], sku: str) -> list[tuple[int, float]]:
    """(ts, unit price) of every priced sighting of ``sku``: product views, carts, order and sale lines."""
    seen = []
    for event in log:
        if event.get("sku") == sku and event.get("price") is not None:
            seen.append((event["ts"], event["price"]))
        for line in event.get("lines", ()) if event["type"] in ("order_placed", "sale") else ():
            if line["sku"] == sku:
                seen.append((event["ts"], line["unit_price"]))
    return seen


def start_prometheus(tmp: Path, metrics_port: int) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the `prometheus` server is not installed (.ci/run installs Debian's package)")
    port = free_port()
    (tmp / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {PROMETHEUS / 'alerts.yml'}\n"
        "scrape_configs:\n  - job_name: channelflow\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{metrics_port}']\n"
    )
    process = subprocess.Popen(
        [binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail("prometheus did not become ready")
        time.sleep(0.2)


def wait_for_scrape(prometheus: str, after: float) -> None:
    """Until Prometheus has scraped the flow at a wall-clock time past ``after``."""
    deadline = time.monotonic() + 30
    while True:
        scraped = query(prometheus, 'timestamp(up{job="channelflow"})')
        if scraped and float(scraped[0]["value"][1]) > after:
            return
        assert time.monotonic() < deadline, "prometheus does not scrape the flow"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def run(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("prometheus")
    metrics_port = free_port()
    start_http_server(metrics_port, addr="127.0.0.1")  # the flow's registry, as `channelflow run` serves it
    process, url = start_prometheus(tmp, metrics_port)
    try:
        config = make_config(broker, partitions=1, KAFKA__BATCH_SIZE="100")  # many batches: the watermark moves
        # As `channelflow run` sets it at start (channelflow/runner.py).
        INFO.labels(version=importlib.metadata.version("channelflow"), currency=config.currency).set(1)
        truth: list[dict[str, Any]] = []
        settings = SimulationSettings(seed=21, customers=3_000, days=1, anomalies_per_day=3)
        log = list(simulate(settings, DEFAULT_LOCATIONS, truth.append))
        end = log[-1]["ts"] + HOUR_MS
        view = next(e for e in reversed(log) if e["type"] == "page_view")
        late = {**view, "event_id": "late-1", "ts": log[0]["ts"]}  # far behind the watermark when it comes
        junk = [(config.kafka.topics["pos"], b"k", b"{not json"), (config.kafka.topics["clickstream"], None, b"[]")]
        produce_events(config, log + log[::50] + [late] + closing_events(end), extra=junk)
        # Prometheus applies its targets a few seconds after start: scrapes during the run let
        # increase() see the counters grow (it cannot count a series' first sample).
        wait_for_scrape(url, after=0)
        with pytest.MonkeyPatch.context() as env:
            # Half the promotions held out: both groups, and the uplift, have data after one day.
            env.setenv("CHANNELFLOW_PROMOTIONS__POLICY__HOLDOUT__PERCENT", "50")
            run_to_end(config)
        wait_for_scrape(url, after=time.time() + 2)  # two more scrapes: every rate() has the final counts
        yield Run(config, [r for r in truth if r.get("record") == "anomaly"], log, url)
    finally:
        process.terminate()
        process.wait(10)


def test_injected_pricing_errors_raise_price_alerts(run: Run) -> None:
    alerts = read_json(run.config, "alerts")
    errors = [a for a in run.truth if a["kind"] == "pricing_error"]
    # Detectable: the SKU was seen at its list price often enough (price_warmup) before the error,
    # and seen at all during it.
    detectable = [
        e for e in errors
        if sum(1 for ts, _ in sightings(run.log, e["sku"]) if ts < e["start"]) >= run.config.anomaly.price_warmup
        and any(e["start"] <= ts < e["end"] for ts, _ in sightings(run.log, e["sku"]))
    ]  # fmt: skip
    assert len(detectable) >= 1
    for error in detectable:
        hits = [a for a in alerts if a["series"] == f"price:{error['sku']}" and a["kind"] == "price_low"]
        assert hits, f"no price alert for {error}"
        assert hits[0]["observed"] == error["error_price"]
        assert hits[0]["expected"] > 1.5 * error["error_price"]  # the usual price, learned before the error
    for alert in alerts:
        assert {"series", "window_start", "window_end", "observed", "expected", "score", "kind", "ts",
                "cause_event_id"} <= set(alert)


def test_every_dashboard_expression_returns_data(run: Run) -> None:
    """Every target, its variables substituted, returns data. A week-ago comparison (offset 7d) cannot
    have data in a fresh Prometheus: it must evaluate, and must return data without the offset (so its
    label matching is right)."""
    expressions = dashboard_expressions()
    assert len(expressions) >= 40
    empty = []
    for board, title, expr in expressions:
        concrete = substitute(expr)
        result = query(run.prometheus, concrete)
        if WEEK_AGO in concrete:
            result = query(run.prometheus, concrete.replace(WEEK_AGO, ""))
        if not result:
            empty.append(f"{board} / {title}: {concrete}")
    assert empty == [], "expressions without data:\n" + "\n".join(empty)


def test_the_channel_and_store_variables_filter_the_kpi_queries(run: Run) -> None:
    kpi = re.compile(r"channelflow_(orders|revenue|sessions|add_to_carts|returns|refunds)_total")
    overview = [(title, expr) for board, title, expr in dashboard_expressions() if board == "overview.json"]
    for title, expr in overview:
        if kpi.search(expr):
            assert "$channel" in expr and "$store" in expr, (title, expr)
            assert query(run.prometheus, substitute(expr, store="no-such-store")) == [], (title, expr)
            assert query(run.prometheus, substitute(expr, channel="no-such-channel")) == [], (title, expr)
    # One store picked: a part of the total. (increase() does not count a series' first sample, and
    # this run of a few seconds puts most of it there: either may be 0.)
    revenue = next(expr for title, expr in overview if title.startswith("Revenue today"))
    [one] = query(run.prometheus, substitute(revenue, channel="store", store="S001"))
    [every] = query(run.prometheus, substitute(revenue))
    assert 0 <= float(one["value"][1]) <= float(every["value"][1])


def test_every_dashboard_variable_has_values(run: Run) -> None:
    label_values = re.compile(r"label_values\((?P<match>.+), *(?P<label>\w+)\)")
    seen = set()
    for name, board in dashboards().items():
        for variable in board["templating"]["list"]:
            found = label_values.fullmatch(variable["query"])
            assert found, (name, variable["name"], variable["query"])
            params = urllib.parse.urlencode({"match[]": substitute(found["match"])})
            answer = get_json(f"{run.prometheus}/api/v1/label/{found['label']}/values?{params}")
            assert answer["status"] == "success" and answer["data"], (name, variable["name"], answer)
            if variable["name"] == "currency":
                assert answer["data"] == [run.config.currency]
            seen.add(variable["name"])
    assert {"channel", "store", "currency"} <= seen


def test_dashboards_describe_every_panel_and_take_the_currency_from_the_config() -> None:
    for name, board in dashboards().items():
        variables = {v["name"] for v in board["templating"]["list"]}
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            assert panel.get("description", "").strip(), f"{name} / {panel['title']} has no description"
            used = set(re.findall(r"\$(\w+)", json.dumps([panel["title"], panel.get("targets", [])])))
            assert used - {"__range"} <= variables, (name, panel["title"], used - variables)
        assert "GBP" not in json.dumps(board), f"{name} hard-codes a currency"
    overview = dashboards()["overview.json"]
    assert overview["time"] == {"from": "now/d", "to": "now"}  # "today so far"
    stats = [panel for panel in overview["panels"] if panel["type"] == "stat"]
    titles = " ".join(panel["title"] for panel in stats)
    for kpi in ("Revenue today", "Orders today", "Average order value today", "Conversion today"):
        assert kpi in titles
    for panel in stats:  # today, the same day last week, the change
        exprs = [target["expr"] for target in panel["targets"]]
        assert len(exprs) == 3 and WEEK_AGO not in exprs[0] and WEEK_AGO in exprs[1] and WEEK_AGO in exprs[2]
        assert all(target.get("instant") for target in panel["targets"])
    assert any(panel["type"] == "table" for board in dashboards().values() for panel in board["panels"])


def test_alert_rules_and_the_prometheus_config_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("`promtool` is not installed (Debian's prometheus package ships it)")
    for command in (
        ["check", "config", str(PROMETHEUS / "prometheus.yml")],  # with its rule_files
        ["check", "rules", str(PROMETHEUS / "alerts.yml")],
        ["test", "rules", str(PROMETHEUS / "alerts.test.yml")],  # thresholds on synthetic series
    ):
        result = subprocess.run([promtool, *command], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


# Rules the run's traffic makes true: two malformed messages, and a replay of simulated days long
# past (the watermark lags by the data's age). The anomaly rules fire iff the flow wrote such alerts.
FIRING = {"ChannelflowDeadLetters", "ChannelflowWatermarkLagHigh", "ChannelflowWatermarkLagCritical"}
# Rules the run must not trip: the flow is scraped, the input drained, 2 malformed messages are
# far below 1% of the input.
QUIET = {"ChannelflowDown", "ChannelflowConsumerLagHigh", "ChannelflowDeadLetterRateHigh"}


def test_prometheus_evaluates_every_alert_rule(run: Run) -> None:
    rules = alert_rules()
    names = {rule["alert"] for rule in rules}
    written = read_json(run.config, "alerts")
    price = [alert for alert in written if alert["series"].startswith("price:")]
    assert price  # the injected pricing errors (test_injected_pricing_errors_raise_price_alerts)
    kpi = {"ChannelflowKpiAnomaly"}
    firing = FIRING | {"ChannelflowPricingError"} | (kpi if len(written) > len(price) else set())
    quiet = QUIET | (kpi - firing)
    assert names >= firing | quiet
    deadline = time.monotonic() + 30
    while True:  # every rule evaluated at least once, without error
        loaded = [
            rule for group in get_json(f"{run.prometheus}/api/v1/rules")["data"]["groups"] for rule in group["rules"]
        ]
        if {rule["name"] for rule in loaded} == names and all(r["health"] != "unknown" for r in loaded):
            break
        assert time.monotonic() < deadline, loaded
        time.sleep(0.5)
    for rule in loaded:
        assert rule["health"] == "ok", rule
    for rule in rules:
        result = query(run.prometheus, rule["expr"])
        if rule["alert"] in firing:
            assert result, f"{rule['alert']} should fire on this run: {rule['expr']}"
        if rule["alert"] in quiet:
            # Gauges keep the last value of earlier in-process runs (their own topics): this run's only.
            ours = set(run.config.kafka.topics) | set(run.config.kafka.topics.values())
            mine = [r for r in result if r["metric"].get("topic", next(iter(ours))) in ours]
            assert mine == [], f"{rule['alert']} should not fire on this run: {mine}"
    active = {alert["labels"]["alertname"] for alert in get_json(f"{run.prometheus}/api/v1/alerts")["data"]["alerts"]}
    assert active >= firing
    dead = [a for a in get_json(f"{run.prometheus}/api/v1/alerts")["data"]["alerts"]
            if a["labels"]["alertname"] == "ChannelflowDeadLetters"]  # fmt: skip
    # The flow runs in this test process, whose metric registry also holds what earlier tests
    # in the same process counted: this run's dead letters are among the alerts.
    assert {(a["labels"]["topic"], a["labels"]["reason"]) for a in dead} >= {
        ("pos", "invalid_json"),
        ("clickstream", "not_object"),
    }





