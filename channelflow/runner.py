"""``channelflow run``: the long-lived flow with recovery, metrics and a clean SIGTERM."""

from __future__ import annotations

import fcntl
import logging
import signal
from datetime import timedelta
from types import FrameType

from bytewax._bytewax import cli_main
from bytewax.errors import BytewaxRuntimeError
from bytewax.recovery import RecoveryConfig, init_db_dir
from prometheus_client import start_http_server

from channelflow.config import Config, FlowConfig, MetricsConfig
from flows.main import build_flow

log = logging.getLogger("channelflow")


def prepare_recovery(flow: FlowConfig) -> RecoveryConfig | None:
    """Create the recovery partitions on first start (once, even with several local processes)."""
    if flow.recovery_dir is None:
        return None
    db_dir = flow.recovery_dir
    db_dir.mkdir(parents=True, exist_ok=True)
    with open(db_dir / ".init.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not any(db_dir.glob("part-*")):
            init_db_dir(db_dir, flow.recovery_partitions)
            log.info("created %d recovery partitions in %s", flow.recovery_partitions, db_dir)
    return RecoveryConfig(str(db_dir), backup_interval=timedelta(milliseconds=flow.backup_interval_ms))


def serve_metrics(metrics: MetricsConfig, process_id: int) -> int | None:
    """Serve /metrics on ``port + process_id``; port 0 turns it off. Returns the port."""
    if metrics.port == 0:
        return None
    port = metrics.port + process_id
    start_http_server(port, addr=metrics.host)
    log.info("metrics on http://%s:%d/metrics", metrics.host, port)
    return port


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(
    config: Config,
    *,
    process_id: int | None = None,
    addresses: list[str] | None = None,
    until_end: bool = False,
) -> int:
    """Run the flow until SIGTERM/SIGINT (or, with ``until_end``, the end of the input)."""
    flow = build_flow(config, tail=not until_end)
    recovery = prepare_recovery(config.flow)
    serve_metrics(config.metrics, process_id or 0)
    signal.signal(signal.SIGTERM, _stop)
    log.info(
        "running flow: brokers=%s shards=%d recovery=%s",
        config.kafka.bootstrap,
        config.flow.shards,
        config.flow.recovery_dir,
    )
    try:
        cli_main(
            flow,
            workers_per_process=config.flow.workers_per_process,
            process_id=process_id,
            addresses=addresses,
            epoch_interval=timedelta(milliseconds=config.flow.snapshot_interval_ms),
            recovery_config=recovery,
        )
    except KeyboardInterrupt:
        log.info("stopped by signal; state is in the last snapshot")
    except BytewaxRuntimeError as exc:
        # Bytewax wraps the KeyboardInterrupt our SIGTERM handler raises.
        if not isinstance(exc.__cause__, KeyboardInterrupt):
            raise
        log.info("stopped by signal; state is in the last snapshot")
    return 0

