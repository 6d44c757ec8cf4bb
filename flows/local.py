"""The flow's domain stages run in-process, without Bytewax or Kafka.

The same :class:`DomainSpec` s as the real flow, the same routing, signals and
watermark propagation, driven synchronously: push de-duplicated events, then
advance the watermark. For scripts that measure a domain on a lot of history
(``bench/churn_quality.py``) and for tests that inspect domain state.

>>> from flows.local import LocalFlow
>>> from operators.contract.events import Event
>>> from tests.flow_harness import probe_spec
>>> flow = LocalFlow([probe_spec(delay_ms=10)], shards=2)
>>> flow.push(Event("e1", "search", "clickstream", 100, {}))
>>> flow.advance(200)
>>> [o.value["kind"] for o in flow.outputs]
['event', 'timer']
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flows.domain_spec import DomainSpec, upstreams
from flows.stateful import EntityStores
from flows.topology import EVENTS, SEQUENCE
from operators.contract.events import Event
from operators.state.store import EntityStore
from operators.time.shard import DomainShard
from operators.time.stream_items import Output, Progress, Signal


class LocalFlow:
    """Domain stages in-process; ``outputs`` collects what they write to Kafka.

    ``shards`` must be the ``flow.shards`` the specs were made with.
    """

    def __init__(self, specs: list[DomainSpec], shards: int) -> None:
        self.specs = specs
        self.inputs = upstreams(specs)
        self.sizes = {SEQUENCE: 1} | {spec.name: spec.shards or shards for spec in specs}
        self.shards: dict[str, list[DomainShard[Any]]] = {
            spec.name: [
                DomainShard(spec.make(k), sum(self.sizes[s] for s in self.inputs[spec.name]), ordered=spec.ordered)
                for k in range(self.sizes[spec.name])
            ]
            for spec in specs
        }
        self._readers: dict[str, list[DomainSpec]] = {}
        for spec in specs:
            for stream in spec.reads:
                self._readers.setdefault(stream, []).append(spec)
        self.outputs: list[Output] = []
        self.stores: dict[tuple[str, int], EntityStore] = {}

    def snapshot(self, folder: Path) -> dict[tuple[str, int], bytes]:
        """Every shard's recovery snapshot (its header; entries go to stores in ``folder``)."""
        stores = EntityStores(folder)
        return {(stage, k): self.store(stores, stage, k).snapshot(shard)
                for stage, shards in self.shards.items() for k, shard in enumerate(shards)}  # fmt: skip

    def store(self, stores: EntityStores, stage: str, shard: int) -> EntityStore:
        """The store shard ``shard`` of ``stage`` snapshots to (opened in ``stores`` the first time)."""
        store = self.stores.get((stage, shard))
        if store is None:
            store = self.stores[stage, shard] = stores.open(stage, shard)
        return store

    def restore(self, folder: Path, headers: dict[tuple[str, int], bytes]) -> None:
        """Replace every shard by what its snapshot in ``headers`` restores, as a restarted process would."""
        for store in self.stores.values():
            store.close()
        self.stores, stores = {}, EntityStores(folder)
        for (stage, k), header in headers.items():
            self.shards[stage][k], self.stores[stage, k] = stores.read(header)

    def domains(self, stage: str) -> list[Any]:
        """The domain state of every shard of ``stage``."""
        return [shard.domain for shard in self.shards[stage]]

    def push(self, event: Event) -> None:
        """Feed one de-duplicated event to the stages that read the event stream."""
        for spec in self._readers.get(EVENTS, ()):
            for k in spec.routes(event, self.sizes[spec.name]):
                self._dispatch(self.shards[spec.name][k].on_event(event))

    def run(self, events: Iterable[Event], *, watermark_every: int = 1_000, lateness_ms: int = 0) -> None:
        """Push ``events`` (in arrival order), advancing the watermark to the latest
        time seen minus ``lateness_ms`` every ``watermark_every`` events and at the end."""
        latest = None
        for n, event in enumerate(events, 1):
            self.push(event)
            latest = event.ts if latest is None else max(latest, event.ts)
            if n % watermark_every == 0:
                self.advance(latest - lateness_ms)
        if latest is not None:
            self.advance(latest - lateness_ms)

    def advance(self, watermark: int) -> None:
        """Move every stage's watermark to ``watermark``, upstream stages first."""
        for spec in self.specs:
            for shard in self.shards[spec.name]:
                for stage in self.inputs[spec.name]:
                    for k in range(self.sizes[stage]):
                        self._dispatch(shard.on_progress(Progress(k, watermark, stage)))

    def _dispatch(self, items: list[Any]) -> None:
        for item in items:
            if isinstance(item, Output):
                self.outputs.append(item)
            elif isinstance(item, Signal):
                for spec in self._readers.get(item.stream, ()):
                    for k in spec.routes(item, self.sizes[spec.name]):
                        self._dispatch(self.shards[spec.name][k].on_event(item))
