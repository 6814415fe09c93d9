"""``pushlab serve`` / ``python -m servers``: run the app under uvicorn."""

from __future__ import annotations

import argparse

import uvicorn

from feed.settings import Settings
from servers.app import create_app

_KEYS = (
    "host",
    "port",
    "ticker_rate",
    "ticker_size",
    "ticker_topic",
    "history",
    "broker",
    "log_level",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags; each overrides the matching ``PUSHLAB_*`` variable."""
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--rate", type=float, dest="ticker_rate", help="ticker events/s (0: off)")
    parser.add_argument("--size", type=int, dest="ticker_size", help="ticker payload bytes")
    parser.add_argument("--topic", dest="ticker_topic", help="ticker topic")
    parser.add_argument("--history", type=int, help="events retained per topic")
    parser.add_argument("--broker", help="broker URL (memory:// or redis://127.0.0.1:6379/0)")
    parser.add_argument("--log-level")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Environment first, then flags."""
    return Settings.from_env(**{k: getattr(args, k, None) for k in _KEYS})


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    settings = settings_from_args(args)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws_max_size=settings.ws_max_message_bytes,
        ws_ping_interval=None,
        # uvicorn negotiates permessage-deflate by default; a py-spy profile of 200 subscribers x
        # 200 events/s spent ~25% of server CPU in PerMessageDeflate.encode for 64-byte events.
        # Node's ws disables it by default too, so the comparison is like for like.
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=5,
    )
    return 0
