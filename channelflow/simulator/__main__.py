"""``python -m channelflow.simulator``: the simulator's CLI on its own."""

import argparse
import sys

from channelflow.simulator.cli import add_arguments, main

parser = argparse.ArgumentParser(prog="channelflow simulate", description=__doc__)
add_arguments(parser)
sys.exit(main(parser.parse_args()))
