"""``channelflow run``: the long-lived flow with recovery, metrics, health checks and a clean stop."""

from __future__ import annotations

import gc
import importlib.metadata
import logging
import os
import signal
import time
from collections.abc import MutableMapping
from contextlib import nullcontext
from datetime import timedelta
from types import FrameType

from bytewax.dataflow import Dataflow
from bytewax.errors import BytewaxRuntimeError
from bytewax.recovery import RecoveryConfig
from bytewax.run import cli_main

from channelflow.config import Config, ConfigError, FlowConfig
from channelflow.http import serve
from channelflow.pipeline import make_flow
from channelflow.recovery import RecoveryDirError, hold_run_lock, prepare_recovery_dir
from channelflow.summary import run_summary
from flows.health import HEALTH
from flows.kafka_source import STOP
from flows.metrics import INFO
from operators.promotions.rules import PromotionSettings

log = logging.getLogger("channelflow")


def tune_gc() -> None:
    """After start-up: move what start-up allocated (modules, config, the flow) out of the
    collector's way, and collect the young generation less often.

    The flow holds large, long-lived state (profiles, ledgers, models) of small objects;
    with CPython's default thresholds the collector walks it over and over.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def prepare_recovery(flow: FlowConfig) -> RecoveryConfig | None:
    """The recovery config, with the partitions created on first start (see :mod:`channelflow.recovery`)."""
    if flow.recovery_dir is None:
        return None
    prepare_recovery_dir(flow.recovery_dir, flow.recovery_partitions, flow.shards)
    return RecoveryConfig(str(flow.recovery_dir), backup_interval=timedelta(milliseconds=flow.backup_interval_ms))


def serve_metrics(config: Config, process_id: int) -> int | None:
    """Serve /metrics, /healthz and /readyz on ``metrics.port + process_id``; port 0 turns it off."""
    metrics = config.metrics
    if metrics.port == 0:
        return None
    port = metrics.port + process_id
    # Not ready while input arrives and the watermark stands still past the idle timeout, twice over.
    stall_ms = 2 * (config.time.idle_timeout_ms + config.time.allowed_lateness_ms) + 10_000
    try:
        serve(metrics.host, port, stall_ms)
    except OSError as exc:  # another channelflow run or demo, most likely
        raise ConfigError(f"metrics.port: {metrics.host}:{port} is in use ({exc.strerror}); set another, or 0 to turn "
                          f"the endpoints off") from None  # fmt: skip
    log.info("metrics on http://%s:%d/metrics (health: /healthz, /readyz)", metrics.host, port)
    return port


def bytewax_api_port(process_id: int, environ: MutableMapping[str, str] | None = None) -> int | None:
    """Give each local process its own port for Bytewax's dataflow API, if it is enabled.

    ``bytewax_kafka_consumer_lag`` (and every ``channelflow_*`` metric) lives in
    the prometheus-client registry that ``serve_metrics`` already serves, so
    Prometheus needs only channelflow's own ``/metrics``. Bytewax's API server
    (``BYTEWAX_DATAFLOW_API_ENABLED`` set) serves the same registry plus its
    ``/dataflow`` graph on ``BYTEWAX_DATAFLOW_API_PORT`` (default 3030); here
    process N uses that port + N so local processes do not collide.

    >>> env = {"BYTEWAX_DATAFLOW_API_ENABLED": "1", "BYTEWAX_DATAFLOW_API_PORT": "4000"}
    >>> bytewax_api_port(2, env), env["BYTEWAX_DATAFLOW_API_PORT"]
    (4002, '4002')
    >>> bytewax_api_port(0, {}) is None
    True
    """
    env = os.environ if environ is None else environ
    if not env.get("BYTEWAX_DATAFLOW_API_ENABLED"):
        return None
    port = int(env.get("BYTEWAX_DATAFLOW_API_PORT") or 3030) + process_id
    env["BYTEWAX_DATAFLOW_API_PORT"] = str(port)
    log.info("Bytewax dataflow API on port %d", port)
    return port


def _stop(signum: int, _frame: FrameType | None) -> None:
    """First stop signal: end the input cleanly (flows.kafka_source); a second one: interrupt."""
    if STOP.is_set():
        raise KeyboardInterrupt
    log.info("%s: stopping after the current batch", signal.Signals(signum).name)
    STOP.set()


def run(
    config: Config,
    *,
    process_id: int | None = None,
    addresses: list[str] | None = None,
    until_end: bool = False,
    promotions: PromotionSettings | None = None,
) -> int:
    """Run the flow until SIGTERM, SIGINT or SIGHUP (or, with ``until_end``, the end of the input);
    ``promotions``: the rules file's, read by the caller (default: read here).

    A stop signal ends the input cleanly: the last epoch closes (a recovery snapshot) and
    the process exits 0; a second signal interrupts at once.
    """
    try:
        flow = make_flow(config, tail=not until_end, promotions=promotions, process_id=process_id, addresses=addresses)
        # Held while the flow runs, taken before the directory is prepared: its state is this run's alone.
        run_lock = hold_run_lock(config.flow.recovery_dir, process_id or 0) if config.flow.recovery_dir else None
    except RecoveryDirError as exc:
        log.error("%s", exc)
        return 2
    with run_lock if run_lock is not None else nullcontext():
        try:
            recovery = prepare_recovery(config.flow)
        except RecoveryDirError as exc:
            log.error("%s", exc)
            return 2
        return _run_flow(config, flow, recovery, process_id, addresses, until_end)


def _run_flow(
    config: Config,
    flow: Dataflow,
    recovery: RecoveryConfig | None,
    process_id: int | None,
    addresses: list[str] | None,
    until_end: bool,
) -> int:
    """Serve the metrics and run ``flow`` to its end or a stop signal (see :func:`run`)."""
    serve_metrics(config, process_id or 0)
    INFO.labels(version=importlib.metadata.version("channelflow"), currency=config.currency).set(1)
    bytewax_api_port(process_id or 0)
    for stop_signal in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(stop_signal, _stop)
    log.info(
        "running flow: brokers=%s shards=%d recovery=%s",
        config.kafka.bootstrap,
        config.flow.shards,
        config.flow.recovery_dir,
    )
    tune_gc()
    HEALTH.note_running(time.time_ns() // 1_000_000)
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
        log.info("interrupted by a second signal; state is in the last snapshot")
        return 0
    except BytewaxRuntimeError as exc:
        # Bytewax wraps the KeyboardInterrupt a second stop signal raises.
        if not isinstance(exc.__cause__, KeyboardInterrupt):
            raise
        log.info("interrupted by a second signal; state is in the last snapshot")
        return 0
    if STOP.is_set():
        log.info("stopped by signal; state is in the last snapshot")
        return 0
    if until_end:
        print(f"end of input{'' if process_id is None else f' (process {process_id})'}:\n{run_summary()}", flush=True)
    return 0
