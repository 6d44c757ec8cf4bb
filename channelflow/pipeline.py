"""The flow for a config file and a live broker: what ``channelflow run`` executes.

``python -m bytewax.run channelflow.pipeline:flow`` builds it from the
configured files (``$CHANNELFLOW_CONFIG``, ``$CHANNELFLOW_PROMOTIONS``).
"""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from channelflow.config import Config, load_config, load_promotions
from channelflow.kafka_io import count_partitions
from channelflow.logs import kafka_client_config
from channelflow.recovery import placement
from flows.domain_spec import DomainSpec
from flows.main import build_flow, domain_specs
from operators.promotions.rules import PromotionSettings


def make_flow(
    config: Config,
    *,
    tail: bool = True,
    domains: list[DomainSpec] | None = None,
    promotions: PromotionSettings | None = None,
    process_id: int | None = None,
    addresses: list[str] | None = None,
) -> Dataflow:
    """The flow for ``config``: the input partitions are asked of the broker;
    ``domains`` default to every stage, with the rules file's promotions, placed as the recovery
    directory's state is (:func:`channelflow.recovery.placement`; given ``domains`` must be made
    with that placement, as :func:`dry_run`'s are); ``process_id`` and
    ``addresses`` place this process in a cluster, as Bytewax's ``cli_main`` takes them
    (``channelflow run -i/-a``)."""
    placed = placement(config.flow.recovery_dir)
    if domains is None:
        domains = domain_specs(config, load_promotions() if promotions is None else promotions, placed)
    partitions = count_partitions(config.kafka.bootstrap, list(config.kafka.input_topics), client=config.kafka.client)
    return build_flow(
        config,
        domains,
        partitions=partitions,
        tail=tail,
        client_config=kafka_client_config(),
        process=process_id or 0,
        processes=len(addresses or ()) or 1,
        placement=placed,
    )


def __getattr__(name: str) -> Dataflow:
    # Built only when Bytewax's runner asks for it, from the configured files.
    if name == "flow":
        return make_flow(load_config())
    raise AttributeError(name)


def dry_run(config: Config, promotions: PromotionSettings | None = None) -> str:
    """Build the dataflow for ``config`` (and the rules file's ``promotions``, read here if not
    given), check that every topic exists, and describe the stages.

    Raises ValueError naming a missing topic.
    """
    from channelflow.kafka_io import missing_topics
    from flows.domain_spec import upstreams

    # The rules first: a bad rules file is named even when the brokers cannot be reached.
    specs = domain_specs(config, load_promotions() if promotions is None else promotions, placement(config.flow.recovery_dir))  # as make_flow's
    missing = missing_topics(config.kafka.bootstrap, config.kafka.topics.values(), client=config.kafka.client)
    if missing:
        raise ValueError(f"topics missing on {config.kafka.bootstrap}: {', '.join(missing)} (channelflow topics creates them)")
    make_flow(config, domains=specs)
    inputs = upstreams(specs)
    width = max(len(name) for name in ["sequence", *(spec.name for spec in specs)])

    def stage(name: str, shards: int, rest: str) -> str:
        return f"{name:<{width}} {shards:>3} shard{'s' if shards != 1 else ' '}  {rest}"

    lines = [
        f"brokers {config.kafka.bootstrap}; input topics {', '.join(config.kafka.input_topics)}",
        stage("sequence", config.flow.shards, f"dedupe, watermark (lateness {config.time.allowed_lateness_ms} ms)"),
    ]
    for spec in specs:
        kind = "ordered" if spec.ordered else "unordered"
        reads = ", ".join(spec.reads)
        lines.append(stage(spec.name, spec.shards or config.flow.shards,
                           f"{kind:<9}  reads {reads}; after {', '.join(inputs[spec.name])}"))  # fmt: skip
    lines.append(f"outputs: {', '.join(f'{k}={v}' for k, v in config.kafka.topics.items() if k not in config.kafka.input_topics.values())}")
    return "\n".join(lines)
