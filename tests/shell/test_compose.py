"""docker-compose.yml against the Compose specification (no Docker engine runs here)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_follows_the_compose_specification() -> None:
    tool = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    result = subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(ROOT / "docker-compose.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_the_real_commands_against_kafka() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "image: apache/kafka" in text and "KAFKA_PROCESS_ROLES: broker,controller" in text
    for command in ('["topics"]', '["run"]', '["simulate"'):
        assert command in text
    assert "CHANNELFLOW_KAFKA__BROKERS: kafka:9092" in text


def _services() -> dict[str, dict[str, object]]:
    from ruamel.yaml import YAML

    doc = YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())
    return doc["services"]


def test_compose_has_prometheus_and_grafana_with_the_provisioning_mounted() -> None:
    services = _services()
    assert {"kafka", "topics", "channelflow", "simulator", "prometheus", "grafana"} <= set(services)
    mounts = {
        name: [str(v).split(":")[:2] for v in services[name].get("volumes", [])]  # type: ignore[union-attr]
        for name in ("prometheus", "grafana")
    }
    assert ["./config/prometheus/prometheus.yml", "/etc/prometheus/prometheus.yml"] in mounts["prometheus"]
    assert ["./config/grafana/provisioning/datasources", "/etc/grafana/provisioning/datasources"] in mounts["grafana"]
    assert ["./config/grafana/provisioning/dashboards", "/etc/grafana/provisioning/dashboards"] in mounts["grafana"]
    assert ["./config/grafana/dashboards", "/var/lib/grafana/dashboards"] in mounts["grafana"]
    for name in ("prometheus", "grafana"):
        for host, _ in mounts[name]:
            if host.startswith("./"):
                assert (ROOT / host).exists(), f"{name} mounts {host}, which is not in the repository"


def test_prometheus_scrapes_the_flow_and_grafana_reads_prometheus() -> None:
    from ruamel.yaml import YAML

    prometheus = YAML(typ="safe").load((ROOT / "config/prometheus/prometheus.yml").read_text())
    targets = [t for job in prometheus["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert "channelflow:9464" in targets
    assert '"9464:9464"' in (ROOT / "docker-compose.yml").read_text()
    datasource = YAML(typ="safe").load((ROOT / "config/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = YAML(typ="safe").load((ROOT / "config/grafana/provisioning/dashboards/channelflow.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboards = sorted(p.name for p in (ROOT / "config/grafana/dashboards").glob("*.json"))
    assert dashboards == ["inventory.json", "model-quality.json", "overview.json", "pipeline.json", "promotions.json"]
