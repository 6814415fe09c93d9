"""``pushlab <command>``: one front door; each command lives with the side it belongs to.

Each entry of :data:`COMMANDS` names a module exposing ``add_arguments(parser)`` and
``run(args) -> int | None``; modules are imported only when their command runs, so ``pushlab
listen`` never pays for matplotlib or Locust.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("servers.cli", "run the server with the built-in ticker"),
    "listen": ("clients.cli", "subscribe over one transport and print events live"),
    "publish": ("clients.publish_cli", "publish one event"),
    "token": ("servers.token_cli", "sign a token with PUSHLAB_AUTH_SECRET (--admin for admin)"),
    "explain": ("clients.explain.cli", "show the real bytes of each protocol against a server"),
    "bench": ("experiments.cli", "run a profile (quick, full, tiny, protocols, ...), plot, report"),
    "capacity": ("experiments.capacity.cli", "where each transport breaks: knees, report"),
    "plot": ("experiments.cli", "regenerate figures and report of a results folder"),
    "chat": ("clients.chat", "terminal chat client for WS /chat"),
    "rtt": ("experiments.rtt", "round trip: WebSocket message vs HTTP request (echo)"),
    "bridge": ("clients.rabbitmq_bridge", "consume a RabbitMQ queue and publish into the feed"),
    "cluster": ("experiments.cluster_cli", "N instances + Redis + nginx/TLS; faults; bench cells"),
    "screenshots": ("experiments.screenshots", "PNGs of the dashboard and whiteboard"),
    "ladder": ("experiments.ladder.cli", "idle connections per transport: memory, handshakes"),
    "storm": ("experiments.storm", "kill and restart a server under 10k clients: the comeback"),
    "browser-run": ("experiments.browser_run", "measure the transports from headless Chromium"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run one command."""
    parser = argparse.ArgumentParser(prog="pushlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    args_list = list(sys.argv[1:] if argv is None else argv)
    chosen = args_list[0] if args_list else None
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    args = parser.parse_args(args_list)
    entry = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(entry.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
