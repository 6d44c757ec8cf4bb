"""The process's HTTP endpoints: /healthz, /readyz and /metrics on one port."""

from __future__ import annotations

import urllib.error
import urllib.request

from channelflow.http import serve
from flows import metrics
from flows.health import Health


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_alive_ready_and_metrics_on_one_port() -> None:
    health = Health()
    server = serve("127.0.0.1", 0, stall_ms=60_000, health=health)
    try:
        port = server.server_port
        assert _get(port, "/healthz") == (200, "alive\n")
        assert _get(port, "/readyz") == (503, "starting\n")
        health.note_running(1)
        assert _get(port, "/readyz") == (200, "consuming\n")
        status, text = _get(port, "/metrics")
        assert status == 200 and f"# HELP {metrics.EVENTS._name}_total" in text
    finally:
        server.shutdown()
