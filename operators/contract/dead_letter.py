"""Dead-letter records: a refused message, why, and its original bytes."""

from __future__ import annotations

import base64
import time
from typing import Any

from operators.contract.events import Rejection


def iso_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as an RFC 3339 UTC string.

    >>> iso_ms(1795342530123)
    '2026-11-22T10:15:30.123Z'
    """
    seconds, millis = divmod(epoch_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def dead_letter(
    raw: bytes | None,
    rejection: Rejection,
    *,
    source_topic: str,
    partition: int | None,
    offset: int | None,
    received_at_ms: int,
) -> dict[str, Any]:
    """The ``dead-letters`` record of a refused message.

    ``raw`` is kept as text when it is UTF-8, else base64 with
    ``raw_encoding: "base64"``, so nothing of the original is lost.

    >>> rec = dead_letter(b"\\xff", Rejection("invalid_utf8", "bad"), source_topic="pos",
    ...                   partition=0, offset=7, received_at_ms=0)
    >>> rec["raw"], rec["raw_encoding"], rec["error"]
    ('/w==', 'base64', 'invalid_utf8')
    """
    record: dict[str, Any] = {
        "error": rejection.error,
        "detail": rejection.detail,
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "received_at": (received_at := iso_ms(received_at_ms)),
        "ts": received_at,
        "cause_event_id": None,
    }
    if raw is None:
        record["raw"] = None
        return record
    try:
        record["raw"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        record["raw"] = base64.b64encode(raw).decode("ascii")
        record["raw_encoding"] = "base64"
    return record
