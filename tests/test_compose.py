"""docker-compose.yml against the Compose specification (no Docker engine runs here)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
