"""What a finite run did, from its own metrics: the lines ``channelflow run --until-end`` ends with.

>>> from prometheus_client import CollectorRegistry, Counter
>>> registry = CollectorRegistry()
>>> Counter("channelflow_output_records", "", ["topic"], registry=registry).labels("alerts").inc(3)
>>> print(run_summary(registry))
records written: alerts 3
dead letters: none
duplicates dropped: 0
late events (applied): 0
"""

from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import REGISTRY, CollectorRegistry


def _totals(registry: CollectorRegistry, name: str, label: str | None) -> Tally[str]:
    found: Tally[str] = Tally()
    for family in registry.collect():
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_total":
                found[sample.labels.get(label, "") if label else ""] += int(sample.value)
    return found


def _listed(tally: Tally[str]) -> str:
    shown = ", ".join(f"{key} {count:,}" for key, count in sorted(tally.items()) if count)
    return shown or "none"


def run_summary(registry: CollectorRegistry = REGISTRY) -> str:
    """Records per output topic, dead letters by reason, duplicates and late events, as text."""
    return "\n".join(
        [
            f"records written: {_listed(_totals(registry, 'channelflow_output_records', 'topic'))}",
            f"dead letters: {_listed(_totals(registry, 'channelflow_dead_letters', 'reason'))}",
            f"duplicates dropped: {sum(_totals(registry, 'channelflow_duplicates', None).values()):,}",
            f"late events (applied): {sum(_totals(registry, 'channelflow_late_events', None).values()):,}",
        ]
    )
