"""``pushlab serve`` / ``python -m servers``: the app under uvicorn (``--http2``: hypercorn)."""

from __future__ import annotations

import argparse
import socket
import sys

from feed.fdlimit import raise_nofile
from feed.settings import SSE_IMPLS, WS_IMPLS, Settings
from servers.app import create_app
from servers.runner import PushlabServer, build_config

_KEYS = (
    "host",
    "port",
    "ticker_rate",
    "ticker_size",
    "ticker_topic",
    "history",
    "broker",
    "log_level",
    "auth",
    "admin",
    "ws_compression",
    "ws_impl",
    "ws_direct",
    "sse_direct",
    "sse_impl",
    "ws_ping_interval_s",
    "ws_ping_timeout_s",
    "origins",
    "max_conns_per_ip",
    "trusted_proxies",
    "shutdown_timeout_s",
    "snapshot_path",
    "webtransport_port",
    "tls_cert",
    "tls_key",
    "http2",
    "http3",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags; each overrides the matching ``PUSHLAB_*`` variable."""
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument(
        "--fd",
        type=int,
        help="serve on this inherited, bound socket (servers/launch.py); host and port are its own",
    )
    parser.add_argument("--rate", type=float, dest="ticker_rate", help="ticker events/s (0: off)")
    parser.add_argument("--size", type=int, dest="ticker_size", help="ticker payload bytes")
    parser.add_argument("--topic", dest="ticker_topic", help="ticker topic")
    parser.add_argument("--history", type=int, help="events retained per topic")
    parser.add_argument("--broker", help="broker URL (memory:// or redis://127.0.0.1:6379/0)")
    parser.add_argument("--log-level")
    on_off = argparse.BooleanOptionalAction
    parser.add_argument("--auth", action=on_off, default=None, help="require JWTs")
    parser.add_argument(
        "--admin", action=on_off, default=None, help="admin routes (/admin/*; off by default)"
    )
    parser.add_argument(
        "--compression",
        action=on_off,
        dest="ws_compression",
        default=None,
        help="WebSocket permessage-deflate",
    )
    parser.add_argument(
        "--ws-impl",
        choices=WS_IMPLS,
        help="uvicorn WebSocket implementation (docs/conformance.md)",
    )
    parser.add_argument(
        "--ws-direct",
        action=on_off,
        dest="ws_direct",
        default=None,
        help="write feed frames straight to the socket when it is idle (servers/fastpath/)",
    )
    parser.add_argument(
        "--sse-direct",
        action=on_off,
        default=None,
        help="SSE: publisher writes live events straight to parked streams",
    )
    parser.add_argument("--sse-impl", choices=SSE_IMPLS, help="SSE response implementation")
    parser.add_argument("--ws-ping-interval", type=float, dest="ws_ping_interval_s")
    parser.add_argument("--ws-ping-timeout", type=float, dest="ws_ping_timeout_s")
    parser.add_argument("--origins", help="comma-separated Origin allowlist ('' = any)")
    parser.add_argument("--max-conns-per-ip", type=int)
    parser.add_argument(
        "--trusted-proxies", help="comma-separated proxy IPs/CIDRs whose X-Forwarded-For is used"
    )
    parser.add_argument("--shutdown-timeout", type=float, dest="shutdown_timeout_s")
    parser.add_argument("--snapshot", dest="snapshot_path", help="history snapshot file")
    parser.add_argument("--tls-cert", help="PEM certificate chain: serve https:// and wss://")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument(
        "--http2",
        action=on_off,
        default=None,
        help="serve under hypercorn: HTTP/2 (ALPN h2 over TLS, h2c without) (servers/http2.py)",
    )
    parser.add_argument(
        "--http3",
        action=on_off,
        default=None,
        help="with --http2 and TLS: HTTP/3 on UDP at the same port number (servers/http2.py)",
    )
    parser.add_argument(
        "--webtransport-port",
        type=int,
        help="WebTransport over HTTP/3 on this UDP port (0: any free one; -1: off, the default)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="N processes on one port (SO_REUSEPORT) over a shared broker (servers/workers.py)",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Environment first, then flags."""
    return Settings.from_env(**{k: getattr(args, k, None) for k in _KEYS})


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT, then drain (see :mod:`servers.runner`)."""
    sock = None
    if getattr(args, "fd", None) is not None:
        # The parent bound it (port 0: no race for a free port). socket(fileno=) reads the family
        # from the descriptor; uvicorn's own --fd path would treat it as a Unix socket.
        sock = socket.socket(fileno=args.fd)
        args.host, args.port = sock.getsockname()[:2]
    try:
        settings = settings_from_args(args)
    except ValueError as exc:  # a setting out of range or unknown: the user's input, not a bug
        print(f"pushlab serve: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "workers", 1) != 1 and (settings.webtransport_port >= 0 or settings.http3):
        # One UDP socket per process, and QUIC packets are not routed to the worker that holds
        # their connection (that needs connection-ID-aware routing): not supported.
        print("pushlab serve: --webtransport-port and --http3 need --workers 1", file=sys.stderr)
        return 2
    if getattr(args, "workers", 1) != 1:
        from servers.workers import run_workers

        return run_workers(settings, args.workers, held=sock)
    raise_nofile()  # one socket per connection: 10k idle connections need > 1,024 descriptors
    if settings.http2:
        return _run_http2(settings, sock)
    app = create_app(settings)
    PushlabServer(build_config(settings, app), app).run(sockets=None if sock is None else [sock])
    return 0


def _run_http2(settings: Settings, sock: socket.socket | None) -> int:
    from servers.http2 import run as run_http2, run_loop
    from servers.launch import bind

    if sock is None:
        sock = bind(settings.host, settings.port)
    with sock:
        run_loop(run_http2(settings, sock))
    return 0
