"""The flow for a config file and a live broker: what ``channelflow run`` executes.

``python -m bytewax.run channelflow.pipeline:flow`` builds it from the
configured files (``$CHANNELFLOW_CONFIG``, ``$CHANNELFLOW_PROMOTIONS``).
"""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from channelflow.config import Config, load_config, load_promotions
from channelflow.kafka_io import count_partitions
from flows.domain_spec import DomainSpec
from flows.main import build_flow, domain_specs
from operators.promotions.rules import PromotionSettings


def make_flow(
    config: Config,
    *,
    tail: bool = True,
    domains: list[DomainSpec] | None = None,
    promotions: PromotionSettings | None = None,
) -> Dataflow:
    """The flow for ``config``: the input partitions are asked of the broker;
    ``domains`` default to every stage, with the rules file's promotions."""
    if domains is None:
        domains = domain_specs(config, load_promotions() if promotions is None else promotions)
    partitions = count_partitions(config.kafka.bootstrap, list(config.kafka.input_topics))
    return build_flow(config, domains, partitions=partitions, tail=tail)


def __getattr__(name: str) -> Dataflow:
    # Built only when Bytewax's runner asks for it, from the configured files.
    if name == "flow":
        return make_flow(load_config())
    raise AttributeError(name)
