"""WebSocket send-path cost: one client drains N retained events; events/s and server CPU/event.

Usage::

    python -m experiments.ws_hotpath --repo /work/main --out before.json     # a baseline checkout
    python -m experiments.ws_hotpath --repo . --out after.json               # this checkout
    python -m experiments.ws_hotpath --repo . --format msgpack --out msgpack.json

The server runs from ``--repo`` (its own ``.venv`` and code) in a subprocess with the ticker off.
N events of ``--size`` bytes are published once; then ``--replays`` times a fresh WebSocket
asks for ``since=0`` and reads all N as fast as the server writes them. That isolates the
per-event send path (batching, framing, metrics) from publishing. Server CPU per delivered event
(``experiments.cpuclock``: user+system, ns, summed over all replays) is the figure that stays
comparable on a busy machine; events/s is printed too but moves with whatever else the machine
is doing. Results are JSON with the parameters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from experiments.cpuclock import process_cpu_s
from experiments.machine import machine_info
from servers.launch import child_env, free_port


def start_server(
    repo: Path, port: int, events: int, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """The repo's own server, ticker off, history large enough for the whole run.

    ``repo`` may be another checkout (an A/B across commits) whose server has no ``--fd``: it
    binds the port itself, like a foreign program, so this is not ``servers.launch``.
    """
    python = repo / ".venv" / "bin" / "python"
    cmd = [str(python), "-m", "servers", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--rate", "0", "--history", str(events), "--log-level", "warning"]
    return subprocess.Popen(cmd, cwd=repo, env=child_env(env), stdout=subprocess.DEVNULL)


async def wait_up(url: str, deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    async with httpx.AsyncClient(trust_env=False) as http:
        while time.monotonic() < end:
            try:
                if (await http.get(f"{url}/healthz")).is_success:
                    return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise TimeoutError("server did not come up")


async def preload(url: str, events: int, size: int) -> None:
    body = json.dumps("x" * size)
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        for _ in range(events):
            r = await http.post(f"{url}/publish", params={"topic": "t"}, content=body)
            r.raise_for_status()


async def replay(url: str, events: int, fmt: str) -> tuple[float, str | None]:
    """Seconds from the first to the last of ``events`` replayed events, and the negotiated
    extensions (the client offers permessage-deflate; whether the server takes it matters)."""
    query = "topic=t&since=0" + ("&format=msgpack" if fmt == "msgpack" else "")
    async with connect(f"{url.replace('http', 'ws')}/ws?{query}", max_size=None) as ws:
        first = None
        n = 0
        while n < events:
            msg = await ws.recv()
            if isinstance(msg, str) and msg.startswith('{"type"'):
                continue
            if first is None:
                first = time.perf_counter()
            n += 1
        assert first is not None and ws.response is not None
        return time.perf_counter() - first, ws.response.headers.get("Sec-WebSocket-Extensions")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    repo = Path(args.repo).resolve()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(kv.split("=", 1) for kv in args.env)
    proc = start_server(repo, port, args.events, env)
    try:
        await wait_up(url)
        await preload(url, args.events, args.size)
        runs = []
        cpu0 = process_cpu_s(proc.pid)
        for _ in range(args.replays):
            seconds, extensions = await replay(url, args.events, args.format)
            runs.append(
                {
                    "seconds": seconds,
                    "events_per_s": args.events / seconds,
                    "extensions": extensions,
                }
            )
        cpu = process_cpu_s(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(30)
    git = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "params": vars(args) | {"repo": str(repo), "repo_commit": git},
        "machine": machine_info(),
        "runs": runs,
        "median_events_per_s": statistics.median(r["events_per_s"] for r in runs),
        "server_cpu_s": cpu,
        "server_cpu_us_per_event": cpu / (args.events * args.replays) * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.ws_hotpath")
    parser.add_argument("--repo", default=".", help="checkout whose server to run")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=64, help="payload bytes")
    parser.add_argument("--replays", type=int, default=5)
    parser.add_argument("--format", choices=("json", "msgpack"), default="json")
    parser.add_argument("--env", action="append", default=[], help="PUSHLAB_X=Y for the server")
    parser.add_argument("--out", help="write the JSON result here too")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(
        f"{args.repo} {args.format}: {result['median_events_per_s']:.0f} events/s, "
        f"{result['server_cpu_us_per_event']:.2f} us server CPU/event "
        f"({args.replays} replays of {args.events}; extensions: {result['runs'][0]['extensions']})",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
