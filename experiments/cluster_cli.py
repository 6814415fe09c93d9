"""``pushlab cluster up|down|faults|pubsub-loss|bench``: the scale-out lab from the command line.

``up`` runs N instances on the Redis broker behind nginx (HTTPS/WSS, local CA) until Ctrl-C;
``down`` stops a cluster started elsewhere by its pid files. The measuring subcommands each start
their own cluster and write a results folder (experiments/results.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

from experiments.cluster import DEFAULT_BROKER, Cluster
from experiments.processes import delete_prefix, stop_by_pidfiles
from experiments.results import ResultsDir

DEFAULT_DIR = Path(".run/cluster")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Subcommand and its flags."""
    parser.add_argument("action", choices=["up", "down", "faults", "pubsub-loss", "bench"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="private nginx prefix")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--broker", default=DEFAULT_BROKER, help="redis://... or memory://")
    parser.add_argument("--sticky", action="store_true", help="cookie-hash stickiness")
    parser.add_argument("--rate", type=float, default=0.0, help="up: ticker events/s")
    parser.add_argument("--events", type=int, default=600, help="faults/bench: events")
    parser.add_argument("--per-transport", type=int, default=5, help="faults: clients each")
    parser.add_argument("--down-ms", default="50,200,1000", help="pubsub-loss: outages")
    parser.add_argument("--out", type=Path, default=Path("results"), help="results root")


def run(args: argparse.Namespace) -> int:
    """Dispatch."""
    if args.action == "down":
        pids = stop_by_pidfiles(args.dir)
        print(f"stopped {len(pids)} processes: {pids}")
        return 0
    if args.action == "up":
        return _up(args)
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    out = ResultsDir.create(f"cluster-{args.action}", args.out)
    out.write_meta(params)
    runner = {"faults": _faults, "pubsub-loss": _pubsub_loss, "bench": _bench}[args.action]
    asyncio.run(runner(args, out))
    print(f"results: {out.path}")
    return 0


def _up(args: argparse.Namespace) -> int:
    cluster = Cluster(
        args.dir,
        instances=args.instances,
        broker=args.broker,
        sticky=args.sticky,
        ticker_rate=args.rate,
    )
    stop = threading.Event()
    # Ctrl-C and `cluster down` (SIGTERM) both end the wait below and tear down in order. Set
    # explicitly: a shell starts background jobs with SIGINT ignored, which Python would keep.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    cluster.start()
    up_pid = cluster.root / "pids" / "up.pid"
    up_pid.write_text(str(os.getpid()))
    assert cluster.tls is not None
    print(f"pushlab cluster: {cluster.url}  (CA: {cluster.tls.ca})")
    print(f"  http→https redirect: http://127.0.0.1:{cluster.http_port}")
    for i, u in enumerate(cluster.instance_urls):
        print(f"  instance {i}: {u}")
    print(f"  e.g. curl --cacert {cluster.tls.ca} '{cluster.url}/poll?topic=ticks&since=0'")
    print("Ctrl-C (or `make cluster-down`) stops everything.", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        cluster.stop()
        up_pid.unlink(missing_ok=True)
    return 0


async def _faults(args: argparse.Namespace, out: ResultsDir) -> None:
    from experiments.failover import with_fault

    for fault in ("sigkill", "rolling"):
        cluster = Cluster(args.dir / fault, instances=args.instances, broker=args.broker).start()
        try:
            assert cluster.tls is not None
            action: Any = cluster.kill_busiest
            if fault == "rolling":
                action = cluster.rolling_restart
            run = await with_fault(
                cluster.url,
                action,
                verify=cluster.tls.client_context(),
                per_transport=args.per_transport,
                events=args.events,
                rate=100.0,
                fault_at=args.events // 3 if fault == "sigkill" else 10,
            )
        finally:
            cluster.stop()
        for transport, cell in run["cells"].items():
            out.add_cell({"fault": fault, "transport": transport, **cell, **run["publisher"]})


async def _pubsub_loss(args: argparse.Namespace, out: ResultsDir) -> None:
    from experiments.pubsub_loss import plain_pubsub, pushlab_streams

    for down in (float(x) for x in args.down_ms.split(",")):
        tag = f"pushlab-loss-{uuid.uuid4().hex[:10]}"
        try:
            out.add_cell(await plain_pubsub(args.broker, tag, args.events, 500.0, 100, down))
            out.add_cell(await pushlab_streams(args.broker, tag, args.events, 500.0, 100, down))
        finally:
            delete_prefix(args.broker, tag)


async def _bench(args: argparse.Namespace, out: ResultsDir) -> None:
    from experiments.cluster_bench import CELLS, measure_cell

    for cell in CELLS:
        out.add_cell(await measure_cell(cell, args.dir / "bench", args.broker, events=args.events))
