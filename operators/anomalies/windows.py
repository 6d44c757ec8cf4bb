"""Event-time tumbling windows of business KPIs per channel and per store.

A *group* is a channel (``web``, ``app``, ``store``) or one store
(``store:S001``). Each de-duplicated event adds to the window of its event
time in every group it belongs to; a closed window gives one value per
*measure*: ``orders``, ``revenue`` (major units), ``add_to_carts``,
``checkouts`` (``checkout_started``), ``sessions`` (sessions started: a session id not
seen for ``session_timeout``),
``returns``, and ``conversion`` (orders / sessions, online groups only). The
series name is ``measure:group``, e.g. ``orders:web`` or ``revenue:store:S012``.

Windows close when the owner says so (on an event-time timer, see
``operators.anomalies.domain``), also when they are empty, so a quiet series is
still measured (a store outage is a run of zeros).

>>> from operators.contract.events import Event
>>> windows = KpiWindows(window_ms=60_000)
>>> sale = Event("e1", "sale", "pos", 61_000, {"store_id": "S1", "total": 12.5, "lines": []})
>>> windows.add(sale, "store:S1")
60000
>>> closed = windows.close("store:S1", 60000)
>>> closed.values()
{'orders': 1.0, 'revenue': 12.5, 'returns': 0.0}
>>> closed.last_event_id
'e1'
"""

from __future__ import annotations

from dataclasses import dataclass

from operators.contract.events import Event
from operators.contract.money import to_millis

__all__ = ["KpiWindows", "Window", "groups_of", "series_name"]

_WINDOW_EVENTS = frozenset({"order_placed", "sale", "return", "add_to_cart", "checkout_started"})


def series_name(measure: str, group: str) -> str:
    """``orders:web``, ``revenue:store:S001``."""
    return f"{measure}:{group}"


def groups_of(event: Event) -> tuple[str, ...]:
    """The window groups an event adds to (empty: none).

    >>> from operators.contract.events import Event
    >>> groups_of(Event("e", "return", "pos", 0, {"store_id": "S2"}))
    ('store', 'store:S2')
    >>> groups_of(Event("e", "page_view", "clickstream", 0, {"channel": "app", "session_id": "s"}))
    ('app',)
    """
    if event.topic == "clickstream":
        return (event.body["channel"],)
    if event.type in ("sale", "return"):
        return ("store", "store:" + event.body["store_id"])
    return ()


def is_online(group: str) -> bool:
    return not group.startswith("store")


@dataclass(slots=True)
class Window:
    """The sums of one group over one window ``[start, start + length)``."""

    group: str
    start: int
    end: int
    orders: int = 0
    revenue_millis: int = 0
    add_to_carts: int = 0
    checkouts: int = 0
    sessions: int = 0
    returns: int = 0
    last_event_id: str | None = None
    last_ts: int = -1

    def values(self) -> dict[str, float]:
        """The measures of the window's group, by name (conversion only with sessions)."""
        if not is_online(self.group):
            return {"orders": float(self.orders), "revenue": self.revenue_millis / 1000, "returns": float(self.returns)}
        values = {
            "orders": float(self.orders),
            "revenue": self.revenue_millis / 1000,
            "add_to_carts": float(self.add_to_carts),
            "checkouts": float(self.checkouts),
            "sessions": float(self.sessions),
        }
        if self.sessions:
            values["conversion"] = self.orders / self.sessions
        return values


class KpiWindows:
    """Open windows of many groups, and the session ids seen recently (for ``sessions``).

    ``window_ms`` is the window length; windows are aligned to the epoch.
    ``session_timeout_ms``: a session id unseen for this long starts a new session.
    """

    def __init__(self, window_ms: int, session_timeout_ms: int = 30 * 60_000) -> None:
        if window_ms <= 0:
            raise ValueError(f"window_ms must be > 0, got {window_ms}")
        self.window_ms = window_ms
        self.session_timeout_ms = session_timeout_ms
        self._open: dict[tuple[str, int], Window] = {}
        self._sessions: dict[str, int] = {}  # session id -> latest event time seen
        #: Sessions started so far, by group (cumulative; the flow turns it into a counter).
        self.sessions_started: dict[str, int] = {}

    def start_of(self, ts: int) -> int:
        """The start of the window holding event time ``ts``."""
        return ts - ts % self.window_ms

    def add(self, event: Event, group: str) -> int | None:
        """Add ``event`` to its window in ``group``; returns the window start, or None if it adds nothing."""
        body = event.body
        kind = event.type
        new_session = False
        if event.topic == "clickstream":
            session = body["session_id"]
            seen = self._sessions.get(session)
            new_session = seen is None or event.ts - seen > self.session_timeout_ms
            if seen is None or event.ts > seen:
                self._sessions[session] = event.ts
            if not new_session and kind not in _WINDOW_EVENTS:
                return None
        elif kind not in _WINDOW_EVENTS:
            return None
        start = self.start_of(event.ts)
        window = self._open.get((group, start))
        if window is None:
            window = self._open[group, start] = Window(group, start, start + self.window_ms)
        if new_session:
            window.sessions += 1
            self.sessions_started[group] = self.sessions_started.get(group, 0) + 1
        if kind == "order_placed" or kind == "sale":
            window.orders += 1
            window.revenue_millis += to_millis(body["total"])
        elif kind == "add_to_cart":
            window.add_to_carts += 1
        elif kind == "checkout_started":
            window.checkouts += 1
        elif kind == "return":
            window.returns += 1
        if event.ts >= window.last_ts:
            window.last_ts, window.last_event_id = event.ts, event.event_id
        return start

    def close(self, group: str, start: int) -> Window:
        """Remove and return the window of ``group`` starting at ``start`` (empty if nothing was added)."""
        window = self._open.pop((group, start), None)
        return window if window is not None else Window(group, start, start + self.window_ms)

    def forget_sessions(self, before_ts: int) -> None:
        """Drop session ids whose latest event is older than ``before_ts`` minus the session timeout."""
        horizon = before_ts - self.session_timeout_ms
        stale = [s for s, ts in self._sessions.items() if ts < horizon]
        for session in stale:
            del self._sessions[session]

    def __len__(self) -> int:
        """Open windows."""
        return len(self._open)
