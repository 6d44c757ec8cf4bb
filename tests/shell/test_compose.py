"""docker-compose.yml against the Compose specification (no Docker engine runs here)."""

from __future__ import annotations

import re
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
    assert ["./config/prometheus/alerts.yml", "/etc/prometheus/alerts.yml"] in mounts["prometheus"]
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
    assert prometheus["rule_files"] == ["alerts.yml"]  # beside prometheus.yml, in the repo and in the container
    published = re.findall(r'^\s+- "([0-9.:]+)"', (ROOT / "docker-compose.yml").read_text(), re.MULTILINE)
    assert "127.0.0.1:9464:9464" in published
    assert all(port.startswith("127.0.0.1:") for port in published), published  # the host only: no authentication
    datasource = YAML(typ="safe").load((ROOT / "config/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = YAML(typ="safe").load((ROOT / "config/grafana/provisioning/dashboards/channelflow.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboards = sorted(p.name for p in (ROOT / "config/grafana/dashboards").glob("*.json"))
    assert dashboards == ["inventory.json", "model-quality.json", "overview.json", "pipeline.json", "promotions.json"]


def test_compose_builds_one_image_for_the_channelflow_services() -> None:
    services = _services()
    built = [name for name, service in services.items() if "build" in service]
    assert built == ["topics"]  # every channelflow service depends on it
    images = {services[name]["image"] for name in ("topics", "channelflow", "simulator")}
    assert images == {"channelflow:local"}
    for name in ("channelflow", "simulator"):
        assert services[name]["pull_policy"] == "never"  # the image is the one `topics` builds
        assert services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_the_flow_has_a_healthcheck_on_healthz() -> None:
    check = _services()["channelflow"]["healthcheck"]
    test = check["test"]
    assert test[0] == "CMD" and test[1] == "python"  # the image has python, not curl
    assert "http://localhost:9464/healthz" in test[-1]
    compile(test[-1], "healthcheck", "exec")


def test_kafka_has_a_listener_for_tools_on_the_host() -> None:
    kafka = _services()["kafka"]
    env = kafka["environment"]
    assert "HOST://:9094" in env["KAFKA_LISTENERS"].split(",")
    assert "HOST://localhost:9094" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")  # the containers' own
    assert "HOST:PLAINTEXT" in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    assert "127.0.0.1:9094:9094" in kafka["ports"]


def test_grafana_takes_its_admin_password_from_the_environment() -> None:
    env = _services()["grafana"]["environment"]
    # Required (`:?`): no default password; compose refuses to start without one.
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
