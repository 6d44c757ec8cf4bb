"""Alarm suppression that never stops the detector learning."""

from __future__ import annotations

from collections import deque

__all__ = ["AlarmGate"]


class AlarmGate:
    """Keep a score only if it beats the previous ``k``; alarm on a kept score >= ``threshold``.

    ``update(score)`` returns ``(kept, alarm)``: ``kept`` is the score if it is higher
    than each of the previous ``k`` scores, else 0.0 (an episode's later, lower
    scores are echoes); ``alarm`` is True for a kept score at or above ``threshold``
    at least ``k`` points after the previous alarm. The gate only filters: the
    detector keeps learning every point, so a new normal becomes normal. A sliding
    maximum (monotone deque) makes each update O(1) amortised.

    >>> gate = AlarmGate(threshold=0.5, k=3)
    >>> [gate.update(s) for s in [0.1, 0.6, 0.7, 0.2, 0.2, 0.2, 0.1, 0.65]]
    [(0.1, False), (0.6, True), (0.7, False), (0.0, False), (0.0, False), (0.0, False), (0.0, False), (0.65, True)]
    """

    __slots__ = ("_last_alarm", "_t", "_window", "k", "threshold")

    def __init__(self, threshold: float, k: int = 150) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.threshold = threshold
        self.k = k
        self._window: deque[tuple[int, float]] = deque()  # (t, score), scores decreasing
        self._t = 0
        self._last_alarm = -(1 << 62)

    def update(self, score: float) -> tuple[float, bool]:
        t = self._t
        self._t += 1
        window = self._window
        while window and window[0][0] < t - self.k:
            window.popleft()
        kept = score if not window or score > window[0][1] else 0.0
        while window and window[-1][1] <= score:
            window.pop()
        window.append((t, score))
        alarm = kept > 0.0 and kept >= self.threshold and t - self._last_alarm >= self.k
        if alarm:
            self._last_alarm = t
        return kept, alarm
