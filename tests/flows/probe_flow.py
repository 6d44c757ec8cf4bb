"""The real flow plus the test probe domain, for ``python -m bytewax.run tests.flows.probe_flow:flow``.

Config comes from the environment (``CHANNELFLOW_*``), as for ``channelflow run``.
"""

from __future__ import annotations

import os

from channelflow.config import load_config
from channelflow.pipeline import make_flow
from tests.flow_harness import probe_spec

flow = make_flow(
    load_config(),
    tail=False,
    domains=[probe_spec(delay_ms=int(os.environ.get("PROBE_DELAY_MS", "5000")))],
)
