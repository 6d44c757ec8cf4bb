"""``[kafka.client]``, ``[kafka.consumer]`` and ``[kafka.producer]``: which of channelflow's Kafka
clients get which librdkafka properties, as a real broker sees their requests."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from channelflow.broker import EmbeddedBroker
from channelflow.config import load_config
from channelflow.demo import run_demo
from tests.conftest import make_config
from tests.flow_harness import T0, closing_events, valid_event
from tests.flows.test_cluster import ROOT, _env

PRODUCE, FETCH, CREATE_TOPICS = 0, 1, 19
# One decoded request in Tansu's log: its API key, client id and body.
REQUEST = re.compile(r'frame=Frame \{ size: \d+, header: Request \{ api_key: (\d+), [^}]*?client_id: Some\("([^"]*)"\) \}, body: (.*)')


def _requests(log: Path) -> list[tuple[int, str, str]]:
    text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(encoding="utf-8", errors="replace"))
    return [(int(m[1]), m[2], m[3]) for m in map(REQUEST.search, text.splitlines()) if m]


def _names_topic(body: str, topic: str) -> bool:
    return f'name: "{topic}"' in body


@pytest.mark.integration
def test_every_client_gets_the_client_table_and_the_producer_its_own(tmp_path: Path) -> None:
    """``[kafka.client] client.id`` reaches the admin client (``channelflow topics``), a tool's
    producer (``channelflow replay``) and the flow's consumers; ``[kafka.producer] client.id``
    overrides it for the flow's output producer, and for nothing else."""
    log = tmp_path / "requests.log"
    with EmbeddedBroker(request_log=log) as broker:
        config = make_config(broker, tmp_path, partitions=1)
        new_topic = f"{config.kafka.topics['alerts']}-renamed"  # missing: `channelflow topics` creates it
        env = _env(
            config,
            CHANNELFLOW_KAFKA__CLIENT__CLIENT__ID="cf-every",
            CHANNELFLOW_KAFKA__PRODUCER__CLIENT__ID="cf-out",
            CHANNELFLOW_KAFKA__TOPICS__ALERTS=new_topic,
        )
        events = tmp_path / "events.jsonl"
        log_events = [valid_event(i, T0 + i * 1000) for i in range(40)] + closing_events(T0 + 3_600_000)
        events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in log_events))
        for command in (["topics"], ["replay", str(events)], ["run", "--until-end"]):
            done = subprocess.run([sys.executable, "-m", "channelflow.cli", *command], env=env, cwd=ROOT,
                                  capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
            assert done.returncode == 0, (command, done.stderr)
    requests = _requests(log)
    inputs = [config.kafka.topics[k] for k in ("clickstream", "pos", "inventory", "customers")]
    updates = config.kafka.topics["inventory_updates"]

    created = [cid for key, cid, body in requests if key == CREATE_TOPICS and _names_topic(body, new_topic)]
    assert created and set(created) == {"cf-every"}
    replayed = {cid for key, cid, body in requests if key == PRODUCE and any(_names_topic(body, t) for t in inputs)}
    assert replayed == {"cf-every"}
    assert "cf-every" in {cid for key, cid, _ in requests if key == FETCH}  # only the flow's consumers fetch
    produced = {cid for key, cid, body in requests if key == PRODUCE and _names_topic(body, updates)}
    assert produced == {"cf-out"}


def test_the_demo_refuses_client_settings_meant_for_a_real_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(environ={"CHANNELFLOW_KAFKA__CLIENT__SECURITY__PROTOCOL": "SSL"})
    assert run_demo(config, argparse.Namespace()) == 2
    assert "kafka.client.security.protocol" in capsys.readouterr().err
