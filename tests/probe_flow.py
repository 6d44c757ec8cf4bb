"""The real flow plus the test probe domain, for ``python -m bytewax.run tests.probe_flow:flow``.

Config comes from the environment (``CHANNELFLOW_*``), as for ``channelflow run``.
"""

from __future__ import annotations

import os

from channelflow.config import load_config
from flows.main import build_flow
from tests.flow_harness import probe_spec

flow = build_flow(
    load_config(),
    tail=False,
    domains=[probe_spec(delay_ms=int(os.environ.get("PROBE_DELAY_MS", "5000")))],
)
