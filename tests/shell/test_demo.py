"""The demo as a newcomer runs it: a live line with simulated time, and a clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from channelflow.broker import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _descendants(pid: int) -> set[int]:
    """Every process whose parent chain leads to ``pid`` (Linux /proc), or that started in its session."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # the parent pid
            found.add(int(entry.name))
    for child in list(found):
        found |= _descendants(child)
    return found


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "sigterm", "sighup"])
def test_the_demo_shows_simulated_time_and_stops_cleanly(stop: signal.Signals) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELFLOW_")}
    env["CHANNELFLOW_METRICS__PORT"] = str(free_port())
    demo = subprocess.Popen(
        [sys.executable, "-m", "channelflow.cli", "demo", "--rate", "200", "--customers", "200"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 180
        assert demo.stdout is not None
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line)
            children |= _descendants(demo.pid)
            if line.startswith("simulated 20") and " | events " in line and "(0/s)" not in line:
                break
        assert any(line.startswith("simulated 20") for line in lines), lines
        demo.send_signal(stop)
        out, err = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0, err
    assert "stopped" in out
    for text in ("Traceback", "panicked", "still in queue", "Connection refused"):
        assert text not in err, err[-3000:]
    assert len(children) >= 3  # broker, flow, simulator
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
