"""Logging for the shell: plain or JSON lines on stderr, librdkafka's own logs routed through it.

librdkafka (under confluent-kafka) logs to stderr by itself unless a client
is given a Python logger (its ``logger`` property); :func:`kafka_client_config`
gives one at warning level, so broker hiccups read like every other log line.

>>> import io, json
>>> stream = io.StringIO()
>>> handler = logging.StreamHandler(stream)
>>> handler.setFormatter(JsonFormatter())
>>> record = logging.LogRecord("channelflow", logging.INFO, "x.py", 1, "started %d shards", (8,), None)
>>> line = json.loads(handler.format(record))
>>> line["level"], line["logger"], line["message"]
('info', 'channelflow', 'started 8 shards')
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import orjson

#: Where librdkafka's messages go (warning and above are shown).
KAFKA_LOGGER = logging.getLogger("channelflow.kafka")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def setup_logging(*, verbose: bool = False, fmt: str = "text") -> None:
    """Configure the root logger once for a command (``fmt``: ``text`` or ``json``)."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
    KAFKA_LOGGER.setLevel(logging.DEBUG if verbose else logging.WARNING)


def kafka_client_config() -> dict[str, Any]:
    """Extra confluent-kafka client properties: librdkafka logs through :data:`KAFKA_LOGGER`."""
    return {"logger": KAFKA_LOGGER}
