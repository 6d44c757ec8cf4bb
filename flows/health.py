"""Liveness and readiness of this process's flow, as its steps see it (read by the shell's /readyz).

The decode step notes input, the sequence stage notes each watermark move and
its wall-clock ticks. The flow is *ready* once it runs, and stays ready unless
input keeps arriving while the watermark stands still for longer than
``stall_ms`` (a stuck partition, a stuck stage).

>>> health = Health()
>>> health.status(now_ms=1_000, stall_ms=10_000)
(False, 'starting')
>>> health.note_running(1_000); health.note_input(2_000)
>>> health.status(now_ms=5_000, stall_ms=10_000)
(True, 'consuming')
>>> health.note_input(20_000)
>>> health.status(now_ms=20_000, stall_ms=10_000)
(False, 'watermark has not moved for 19.0 s while input arrives')
>>> health.note_watermark(20_500)
>>> health.status(now_ms=21_000, stall_ms=10_000)
(True, 'consuming')
"""

from __future__ import annotations

import threading


class Health:
    """Wall-clock times (epoch ms) of the flow's last signs of life; thread-safe enough (plain stores)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running_since: int | None = None
        self.last_input: int | None = None
        self.last_watermark: int | None = None

    def note_running(self, now_ms: int) -> None:
        with self._lock:
            self.running_since = self.running_since or now_ms
            self.last_watermark = self.last_watermark or now_ms

    def note_input(self, now_ms: int) -> None:
        self.last_input = now_ms

    def note_watermark(self, now_ms: int) -> None:
        self.last_watermark = now_ms

    def status(self, now_ms: int, stall_ms: int) -> tuple[bool, str]:
        """(ready, why)."""
        with self._lock:
            if self.running_since is None:
                return False, "starting"
            since = max(self.last_watermark or self.running_since, self.running_since)
            if self.last_input is not None and self.last_input > since and now_ms - since > stall_ms:
                return False, f"watermark has not moved for {(now_ms - since) / 1000:.1f} s while input arrives"
            return True, "consuming"


#: This process's flow.
HEALTH = Health()
