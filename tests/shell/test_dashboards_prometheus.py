"""Anomaly alerts and every Grafana panel query, end to end: simulated traffic with injected
anomalies through the real broker and the real flow, scraped by a real Prometheus server
(Debian's ``prometheus``), each dashboard expression evaluated through its HTTP API."""

from __future__ import annotations

import json
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

from channelflow.broker import EmbeddedBroker, free_port
from channelflow.config import Config
from channelflow.simulator import DEFAULT_LOCATIONS, SimulationSettings, simulate
from tests.conftest import make_config
from tests.flow_harness import closing_events, produce_events, read_json, run_to_end

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "config" / "grafana" / "dashboards"
HOUR_MS = 3_600_000


def dashboard_expressions() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL) of every target of every panel."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                found.append((path.name, panel["title"], target["expr"]))
    return found


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


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


@pytest.fixture(scope="module")
def run(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("prometheus")
    metrics_port = free_port()
    start_http_server(metrics_port, addr="127.0.0.1")  # the flow's registry, as `channelflow run` serves it
    process, url = start_prometheus(tmp, metrics_port)
    try:
        config = make_config(broker, partitions=1, KAFKA__BATCH_SIZE="100")  # many batches: the watermark moves
        truth: list[dict[str, Any]] = []
        settings = SimulationSettings(seed=21, customers=3_000, days=1, anomalies_per_day=3)
        log = list(simulate(settings, DEFAULT_LOCATIONS, truth.append))
        end = log[-1]["ts"] + HOUR_MS
        view = next(e for e in reversed(log) if e["type"] == "page_view")
        late = {**view, "event_id": "late-1", "ts": log[0]["ts"]}  # far behind the watermark when it comes
        junk = [(config.kafka.topics["pos"], b"k", b"{not json"), (config.kafka.topics["clickstream"], None, b"[]")]
        produce_events(config, log + log[::50] + [late] + closing_events(end), extra=junk)
        run_to_end(config)
        time.sleep(4)  # a few more scrapes after the run, so every rate() has two samples
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
    expressions = dashboard_expressions()
    assert len(expressions) >= 25
    empty = []
    for board, title, expr in expressions:
        query = urllib.parse.urlencode({"query": expr})
        answer = get_json(f"{run.prometheus}/api/v1/query?{query}")
        assert answer["status"] == "success", (board, title, expr, answer)
        if not answer["data"]["result"]:
            empty.append(f"{board} / {title}: {expr}")
    assert empty == [], "expressions without data:\n" + "\n".join(empty)
