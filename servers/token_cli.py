"""``pushlab token USER [--admin]``: sign a token with this machine's ``PUSHLAB_AUTH_SECRET``.

Whoever holds the secret can sign any token, so this is the way to an admin token (``POST
/token`` never signs the admin claim). It prints the token alone, for ``$(pushlab token ...)``.
"""

from __future__ import annotations

import argparse

from feed.settings import Settings
from servers.auth import issue


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``pushlab token``."""
    parser.add_argument("user", help="the token's subject")
    parser.add_argument("--admin", action="store_true", help="add the admin claim")
    parser.add_argument("--ttl", type=float, help="lifetime, s (default PUSHLAB_AUTH_TOKEN_TTL_S)")


def run(args: argparse.Namespace) -> int:
    """Print the signed token."""
    token, _ = issue(Settings.from_env(), args.user, args.ttl, admin=args.admin)
    print(token)
    return 0
