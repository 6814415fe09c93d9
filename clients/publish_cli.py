"""``pushlab publish``: send one JSON event to ``POST /publish``."""

from __future__ import annotations

import argparse
import sys

import httpx

from feed.codec import loads


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``pushlab publish``."""
    parser.add_argument("data", help="JSON body, e.g. '{\"price\": 1}'")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--topic", default="ticks")
    parser.add_argument("--token", help="JWT (POST /token) when the server runs with --auth")


def run(args: argparse.Namespace) -> int:
    """Publish and print the server's answer; non-zero exit on an error answer."""
    try:
        loads(args.data)
    except ValueError as exc:
        print(f"not JSON: {exc}", file=sys.stderr)
        return 2
    headers = {"content-type": "application/json"}
    if args.token:
        headers["authorization"] = f"Bearer {args.token}"
    response = httpx.post(
        f"{args.url.rstrip('/')}/publish",
        params={"topic": args.topic},
        content=args.data,
        headers=headers,
        trust_env=False,
    )
    print(response.text)
    return 0 if response.is_success else 1
