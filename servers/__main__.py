"""``python -m servers``: the same as ``pushlab serve``."""

import argparse
import sys

from servers.cli import add_arguments, run

parser = argparse.ArgumentParser(prog="python -m servers")
add_arguments(parser)
sys.exit(run(parser.parse_args()))
