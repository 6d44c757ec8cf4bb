"""The traffic simulator behind ``channelflow simulate``: a deterministic, realistic retailer.

Customers with gamma-distributed shopping rates and a latent churn time browse
the web and the app, buy online and at store tills, return things, link
loyalty cards, change consent, and leave; stores keep local opening hours;
stock is counted, received, transferred and shipped; anomalies are injected
and written to a ground-truth file. See ``docs/simulator.md``.
"""

from channelflow.simulator.cli import add_arguments, main
from channelflow.simulator.engine import simulate
from channelflow.simulator.settings import (
    DEFAULT_LOCATIONS,
    DEFAULT_START_MS,
    Location,
    SimulationSettings,
)
from channelflow.simulator.truth import GroundTruthWriter
from channelflow.simulator.world import TruthSink

__all__ = [
    "DEFAULT_LOCATIONS",
    "DEFAULT_START_MS",
    "GroundTruthWriter",
    "Location",
    "SimulationSettings",
    "TruthSink",
    "add_arguments",
    "main",
    "simulate",
]
