"""Dead-letter records: a refused message, why, and its original bytes (or as much as fits).

A dead letter must itself fit in one Kafka message, so its JSON is kept at or under
``max_bytes`` (``ingest.max_output_bytes``): when the original does not fit, ``raw`` keeps
its beginning and ``truncated`` is true. ``raw_bytes`` and ``raw_sha256`` always describe
the whole original, so it can be matched with the message still in the input topic.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import orjson

from operators.contract.events import Rejection

#: The default limit on a dead letter's JSON (``ingest.max_output_bytes``): Kafka's default
#: ``message.max.bytes`` is 1,048,588 bytes; this leaves room for the key and the framing.
MAX_OUTPUT_BYTES = 900_000
#: A ``detail`` is for humans: longer ones are cut to this many characters.
MAX_DETAIL_CHARS = 1_000
#: The envelope (every field but ``raw``) is never larger than this, so any ``max_bytes``
#: from this up leaves room for it.
MIN_OUTPUT_BYTES = 4_096


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
    max_bytes: int = MAX_OUTPUT_BYTES,
) -> dict[str, Any]:
    """The ``dead-letters`` record of a refused message; its JSON is at most ``max_bytes``.

    ``raw`` is kept as text when it is UTF-8, else base64 with
    ``raw_encoding: "base64"``, so nothing of the original is lost unless it does
    not fit (``truncated``: then ``raw`` is its beginning).

    >>> rec = dead_letter(b"\\xff", Rejection("invalid_utf8", "bad"), source_topic="pos",
    ...                   partition=0, offset=7, received_at_ms=0)
    >>> rec["raw"], rec["raw_encoding"], rec["error"], rec["raw_bytes"], rec["truncated"]
    ('/w==', 'base64', 'invalid_utf8', 1, False)
    >>> rec = dead_letter(b"x" * 10_000, Rejection("oversize", "big"), source_topic="pos",
    ...                   partition=0, offset=8, received_at_ms=0, max_bytes=4096)
    >>> len(orjson.dumps(rec)) <= 4096, rec["truncated"], rec["raw_bytes"], rec["raw"] == "x" * len(rec["raw"])
    (True, True, 10000, True)
    """
    if max_bytes < MIN_OUTPUT_BYTES:
        raise ValueError(f"max_bytes must be at least {MIN_OUTPUT_BYTES}, got {max_bytes}")
    detail = rejection.detail
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[: MAX_DETAIL_CHARS - 1] + "…"
    record: dict[str, Any] = {
        "error": rejection.error,
        "detail": detail,
        "source_topic": source_topic[:256],
        "partition": partition,
        "offset": offset,
        "received_at": (received_at := iso_ms(received_at_ms)),
        "ts": received_at,
        "cause_event_id": None,
        "raw_bytes": None,
        "raw_sha256": None,
        "truncated": False,
    }
    if raw is None:
        record["raw"] = None
        return record
    raw = bytes(raw)
    record["raw_bytes"] = len(raw)
    record["raw_sha256"] = hashlib.sha256(raw).hexdigest()
    try:
        text: str | None = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    # The size of everything but raw's content: "raw":"" is already counted.
    envelope = len(orjson.dumps({**record, "raw": "", "raw_encoding": "base64"}))
    budget = max_bytes - envelope
    if text is not None:
        # JSON escapes make text longer than its bytes only for control characters, quotes
        # and backslashes; measure the encoding instead of guessing.
        if len(raw) <= budget and len(orjson.dumps(text)) - 2 <= budget:
            record["raw"] = text
            return record
        record["raw"] = _text_prefix(raw, budget)
        record["truncated"] = True
        return record
    record["raw_encoding"] = "base64"
    if (len(raw) + 2) // 3 * 4 <= budget:
        record["raw"] = base64.b64encode(raw).decode("ascii")
        return record
    record["raw"] = base64.b64encode(raw[: budget // 4 * 3]).decode("ascii")
    record["truncated"] = True
    return record


def _text_prefix(raw: bytes, budget: int) -> str:
    """The longest-found beginning of UTF-8 ``raw`` whose JSON string content is at most ``budget``."""
    keep = min(len(raw), budget)
    while True:
        # A cut inside a multi-byte character leaves an incomplete sequence at the end only.
        prefix = raw[:keep].decode("utf-8", "ignore")
        size = len(orjson.dumps(prefix)) - 2
        if size <= budget:
            return prefix
        keep = max(0, min(keep - 1, keep * budget // size - 4))
