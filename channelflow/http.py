"""The process's HTTP endpoints beside the flow: ``/metrics``, ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the process serves at all (alive); ``/readyz``
answers 200 once the flow runs and while its watermark keeps up with the
input (see :class:`flows.health.Health`), 503 with the reason otherwise.
Everything else is Prometheus's exposition of the default registry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, make_wsgi_app

from flows.health import HEALTH, Health

Respond = Callable[[str, list[tuple[str, str]]], Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not news."""


def endpoints(health: Health, stall_ms: int) -> Callable[[dict[str, Any], Respond], Iterable[bytes]]:
    """The WSGI app: health checks, then metrics."""
    metrics = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], respond: Respond) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            respond("200 OK", [("Content-Type", "text/plain")])
            return [b"alive\n"]
        if path == "/readyz":
            ready, why = health.status(time.time_ns() // 1_000_000, stall_ms)
            respond("200 OK" if ready else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [why.encode() + b"\n"]
        return metrics(environ, respond)

    return app


def serve(host: str, port: int, stall_ms: int, health: Health = HEALTH) -> WSGIServer:
    """Serve the endpoints on ``host:port`` from a daemon thread; the server (its port: ``server_port``)."""
    server = make_server(host, port, endpoints(health, stall_ms), _Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="channelflow-http", daemon=True).start()
    return server
