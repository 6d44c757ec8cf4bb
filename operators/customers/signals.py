"""The streams the customer stages publish (bodies of :class:`~operators.time.stream_items.Signal` s).

* ``CUSTOMER_EVENTS`` (identity, keyed by account): :class:`Resolved` events,
  :class:`Merge` of an alias's profile at link time, :class:`Erase`.
* ``CUSTOMER_SNAPSHOTS`` (identity and customers, one key): :class:`Snapshot`
  (score this customer now), :class:`TickSnapshots` (score these customers at
  a tick), :class:`Example` (a matured, labelled snapshot to
  learn), :class:`Retired` (a linked alias), :class:`Erase`.
* ``CUSTOMER_ACTIVITY`` and ``CUSTOMER_ERASURES`` (keyed by customer): see
  :mod:`operators.customers.records`.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from operators.contract.events import Event
from operators.customers.profile import CustomerProfile
from operators.records import fast_init
from operators.state.pickling import pickled_as_call

#: Stream names.
CUSTOMER_EVENTS = "customer_events"
CUSTOMER_SNAPSHOTS = "customer_snapshots"
CUSTOMER_ACTIVITY = "customer_activity"
CUSTOMER_ERASURES = "customer_erasures"
#: Every snapshot and example has this key: one model learns from all of them.
SNAPSHOT_KEY = "model"

#: Pending churn snapshots of one customer: their tick numbers (``ts // tick``, ascending, int32)
#: and their features (float32, ``operators.churn.features.WIDTH`` values per tick).
Snapshots = tuple[array, array]


@pickled_as_call
@fast_init
@dataclass(frozen=True, slots=True)
class Resolved:
    """An event of account ``customer_id`` (it may have come in under a linked alias)."""

    customer_id: str
    event: Event


@pickled_as_call
@dataclass(frozen=True, slots=True)
class Merge:
    """Alias ``alias`` (``device:...`` or ``loyalty:...``) is now ``customer_id``: take its history."""

    customer_id: str
    alias: str
    profile: CustomerProfile | None
    snapshots: Snapshots | None
    cause_event_id: str


@pickled_as_call
@dataclass(frozen=True, slots=True)
class Erase:
    """Forget ``customer_id``."""

    customer_id: str
    cause_event_id: str


@dataclass(frozen=True, slots=True)
class Retired:
    """Alias ``alias`` merged into an account: its own score is history."""

    alias: str


@pickled_as_call
@fast_init
@dataclass(frozen=True, slots=True)
class Snapshot:
    """Score ``customer_key`` with these features (and publish the score if it moved)."""

    customer_key: str
    features: dict[str, float]
    rfm: dict[str, float | int]
    tier: str
    cause_event_id: str


@pickled_as_call
@fast_init
@dataclass(frozen=True, slots=True)
class TickSnapshots:
    """Score these customers at a tick: one book's customers with a purchase, in one item.

    ``packed`` holds their features as float32, ``operators.churn.features.WIDTH``
    values per customer in ``keys`` order; the other fields are per customer too
    (what a published score carries besides the score).
    """

    keys: tuple[str, ...]
    packed: array
    recency_days: tuple[float, ...]
    frequency: tuple[int, ...]
    monetary: tuple[float, ...]
    tiers: tuple[str, ...]
    causes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Example:
    """A snapshot taken at ``snapshot_ts`` whose horizon has passed: ``churned`` is its label."""

    customer_key: str
    features: dict[str, float]
    churned: bool
    snapshot_ts: int
