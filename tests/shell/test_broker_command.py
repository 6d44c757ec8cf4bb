"""``channelflow broker``: a local broker for ``run``, ``replay`` and ``simulate`` without Docker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from channelflow.broker import free_port
from tests.flow_harness import valid_event

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_795_300_000_000


def _env(port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELFLOW_")}
    return {**env, "CHANNELFLOW_KAFKA__BROKERS": f"127.0.0.1:{port}", "CHANNELFLOW_METRICS__PORT": "0",
            "CHANNELFLOW_FLOW__RECOVERY_DIR": "none", **extra}  # fmt: skip


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "channelflow.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip


def test_the_broker_command_serves_a_replay_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = _env(port)
    broker = subprocess.Popen([sys.executable, "-m", "channelflow.cli", "broker", "--create-topics"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert broker.stdout is not None
        first = broker.stdout.readline()  # printed once the broker answers and the topics exist
        assert first.startswith(f"embedded broker on 127.0.0.1:{port}"), first
        log = tmp_path / "events.jsonl"
        log.write_bytes(b"".join(orjson.dumps(valid_event(i, T0 + i * 1_000)) + b"\n" for i in range(40)))
        replayed = _cli("replay", str(log), env=env)
        assert replayed.returncode == 0, replayed.stderr
        ran = _cli("run", "--until-end", env=env)
        assert ran.returncode == 0, ran.stderr
        assert "inventory_updates" in ran.stdout + ran.stderr
        # The port is taken while it runs: a second broker says so.
        second = _cli("broker", "--port", str(port), env=env)
        assert second.returncode == 2 and f"port {port} on 127.0.0.1 is taken" in second.stderr
        broker.send_signal(signal.SIGINT)
        out, err = broker.communicate(timeout=60)
    finally:
        if broker.poll() is None:
            broker.kill()
    assert broker.returncode == 0, err
    assert "stopping the broker" in out and "Traceback" not in err
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the broker process is gone with it: the port is free again
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.2)
    else:
        pytest.fail(f"port {port} still taken after the broker command stopped")


def test_run_names_the_metrics_port_when_it_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(free_port(), CHANNELFLOW_METRICS__PORT=str(port))
        with subprocess.Popen([sys.executable, "-m", "channelflow.cli", "broker", "--create-topics"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, text=True) as broker:  # fmt: skip
            try:
                assert broker.stdout is not None
                assert broker.stdout.readline().startswith("embedded broker on ")
                done = _cli("run", "--until-end", env=env)
            finally:
                broker.send_signal(signal.SIGINT)
                broker.wait(60)
    assert done.returncode == 2, done.stderr
    assert f"metrics.port: 127.0.0.1:{port} is in use" in done.stderr and "Traceback" not in done.stderr
