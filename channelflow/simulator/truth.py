"""The ground-truth file: JSON lines that say what the simulator did on purpose."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import IO, Any

import orjson


class GroundTruthWriter:
    """Write ground-truth records as JSON lines to ``path`` (``-`` for stderr); use as a sink.

    >>> import io
    >>> out = io.BytesIO()
    >>> GroundTruthWriter(out)({"record": "erasure", "at": 5})
    >>> out.getvalue()
    b'{"record":"erasure","at":5}\\n'
    """

    def __init__(self, target: str | IO[bytes]) -> None:
        if isinstance(target, str):
            self._out: IO[bytes] = sys.stderr.buffer if target == "-" else open(target, "wb")  # noqa: SIM115
            self._owned = target != "-"
        else:
            self._out, self._owned = target, False
        self.records = 0

    def __call__(self, record: dict[str, Any]) -> None:
        self._out.write(orjson.dumps(record) + b"\n")
        self.records += 1

    def close(self) -> None:
        if self._owned:
            self._out.close()
        else:
            self._out.flush()

    def __enter__(self) -> GroundTruthWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
