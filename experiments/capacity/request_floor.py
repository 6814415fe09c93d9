"""The request floor: what one answered request costs a server stack with nothing to do.

Short and long polling pay per request, not per write, so the send-loop ceiling
(:mod:`experiments.capacity.calibration`) does not bound them. Here each stack the polling rows
ran on answers every ``GET`` at once with the same fixed body (a one-event poll answer), no
routing, no parsing of the query, no feed:

- ``python``: uvicorn as pushlab runs it (:func:`servers.runner.build_config`: uvloop, the
  guarded httptools protocol, no access log) around a bare ASGI callable;
- ``node``: ``node:http``'s ``createServer({noDelay: true})``, as the Node baseline serves.

A driver process (its own loopback source address) keeps ``connections`` keep-alive connections
busy, closed loop: the next request on a connection goes as soon as its answer is in, so the
server never waits for work. Server CPU per answer over the window is the floor: a polling
server on that stack pays at least this per request, whatever its handler does.

The same uvicorn app holds idle WebSockets and ``/sse`` streams for the connection ladder's
``floor`` rungs (experiments/ladder): what an idle connection and a handshake cost that stack
with no feed behind them.

``python -m experiments.capacity.request_floor serve PORT`` runs the uvicorn side;
``... drive HOST PORT N SECONDS SERVER_PID`` is the driver (one JSON line out).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from experiments.capacity.calibration import PAYLOAD
from experiments.children import spawn, stop, wait_healthy
from experiments.countwire import auto_source
from experiments.cpuclock import process_cpu_s
from experiments.records import RequestFloorFigures
from feed.wire.http1 import request_head, split_head
from servers.launch import free_port

# A one-event poll answer, as servers/short_poll.batch_body shapes it.
BODY = (
    b'{"topic":"ticks","events":[' + PAYLOAD + b'],"cursor":1234567,"more":false,'
    b'"last_seq":1234567,"recovered":true,"gap":null}'
)
# The long-poll request the capacity pollers send (experiments/capacity/pollwire.py).
REQUEST = request_head(
    "GET", "/long-poll?topic=ticks&since=1234566&timeout=20", "127.0.0.1",
    {"User-Agent": "pushlab-pollwire"},
)  # fmt: skip
SERVERS = ("python", "node")
NODE_SERVER = """
const http = require('node:http');
const body = Buffer.from(process.argv[2]);
const head = {'content-type': 'application/json', 'content-length': body.length};
http.createServer({noDelay: true}, (req, res) => { res.writeHead(200, head); res.end(body); })
  .listen(Number(process.argv[1]), '127.0.0.1');
"""
WARMUP_S = 0.5
CONNECT_TIMEOUT_S = 10.0


async def floor_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer every HTTP request with :data:`BODY`; hold a WebSocket (accepted) or a ``/sse``
    stream (its head and a ``retry`` line) open, idle, until the client leaves; the lifespan as
    uvicorn expects it. The held ones are the connection ladder's floor rungs."""
    kind = scope["type"]
    if kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if kind == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    if kind != "http":
        return
    if scope["path"] == "/sse":
        head = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send({"type": "http.response.body", "body": b"retry: 1000\n\n", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


def serve(port: int) -> None:
    """uvicorn with pushlab's own config around :func:`floor_app`."""
    import uvicorn

    from feed.settings import Settings
    from servers.runner import build_config

    config = build_config(Settings(port=port, log_level="warning"), floor_app)  # type: ignore[arg-type]
    uvicorn.Server(config).run()


def _answer_len(host: str, port: int, source: str) -> int:
    """Bytes of one whole answer (head and body): the server's answers are all the same size."""
    with socket.create_connection((host, port), CONNECT_TIMEOUT_S, (source, 0)) as s:
        s.sendall(REQUEST)
        data = b""
        while (split := split_head(data)) is None:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("the floor server closed before answering")
            data += chunk
        head = split[0]
        if head.status != 200:
            raise RuntimeError(f"the floor server answered {head.status} {head.reason}")
        return len(head.raw) + int(head.headers["content-length"])


def drive(host: str, port: int, n: int, seconds: float, server_pid: int) -> dict[str, float]:
    """Closed loop on ``n`` keep-alive connections for ``seconds`` after a warm-up: answers,
    wall time, and the server's and this driver's CPU over exactly that window."""
    source = auto_source(os.getpid())
    size = _answer_len(host, port, source)
    ep = select.epoll()
    socks: dict[int, socket.socket] = {}
    got: dict[int, int] = {}
    try:
        for _ in range(n):
            s = socket.create_connection((host, port), CONNECT_TIMEOUT_S, (source, 0))
            s.setblocking(False)
            socks[s.fileno()] = s
            got[s.fileno()] = 0
            ep.register(s.fileno(), select.EPOLLIN)
            s.send(REQUEST)
        answers, counting = 0, False
        start = time.perf_counter()
        end = start + WARMUP_S + seconds
        while (now := time.perf_counter()) < end:
            if not counting and now >= start + WARMUP_S:
                counting, answers = True, 0
                t0, s0, d0 = now, process_cpu_s(server_pid), time.process_time()
            for fd, _ in ep.poll(0.5):
                data = socks[fd].recv(65536)
                if not data:
                    raise RuntimeError("the floor server closed a keep-alive connection")
                got[fd] += len(data)
                while got[fd] >= size:  # one request in flight per connection
                    got[fd] -= size
                    answers += 1
                    socks[fd].send(REQUEST)
        wall = time.perf_counter() - t0
        server_cpu, driver_cpu = process_cpu_s(server_pid) - s0, time.process_time() - d0
    finally:
        for s in socks.values():
            s.close()
        ep.close()
    return {"answers": answers, "wall_s": wall, "server_cpu_s": server_cpu,
            "driver_cpu_s": driver_cpu, "answer_bytes": size}  # fmt: skip


class FloorServer:
    """The floor app (``python``) or :data:`NODE_SERVER` (``node``) in a session of its own, on a
    free port; ``pid``, ``port``, ``start`` and ``stop`` as the ladder's servers have them."""

    def __init__(self, server: str = "python", log_path: Path | None = None) -> None:
        self.server, self.log_path = server, log_path
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> FloorServer:
        self.port = free_port()
        self.proc = spawn(_server_argv(self.server, self.port), into=[], log=self.log_path)
        try:  # the floor app answers any GET, /healthz included
            wait_healthy(f"http://127.0.0.1:{self.port}/healthz", self.proc)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


def _server_argv(server: str, port: int) -> list[str]:
    if server == "python":
        return [sys.executable, "-m", "experiments.capacity.request_floor", "serve", str(port)]
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed: no Node request floor")
    return [node, "-e", NODE_SERVER, str(port), BODY.decode()]


def measure(server: str, connections: int, duration_s: float) -> RequestFloorFigures:
    """The floor of ``server`` (``python`` or ``node``) on ``connections`` connections."""
    floor = FloorServer(server).start()
    try:
        argv = [sys.executable, "-m", "experiments.capacity.request_floor", "drive", "127.0.0.1",
                str(floor.port), str(connections), str(duration_s), str(floor.pid)]  # fmt: skip
        timeout = WARMUP_S + duration_s + CONNECT_TIMEOUT_S + 30
        out = subprocess.run(argv, capture_output=True, check=True, timeout=timeout, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        floor.stop()
    answers, cpu, wall = r["answers"], r["server_cpu_s"], r["wall_s"]
    return {
        "server": server, "connections": connections, "answers": answers, "wall_s": wall,
        "answer_bytes": r["answer_bytes"], "server_cpu_s": cpu, "driver_cpu_s": r["driver_cpu_s"],
        "answers_per_s": answers / wall, "server_cpu_pct": 100 * cpu / wall,
        "driver_cpu_pct": 100 * r["driver_cpu_s"] / wall,
        "answers_per_core_s": answers / cpu if cpu > 0 else float("nan"),
        "server_us_per_answer": 1e6 * cpu / answers if answers else float("nan"),
        "driver_us_per_answer": 1e6 * r["driver_cpu_s"] / answers if answers else float("nan"),
    }  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    elif len(sys.argv) == 7 and sys.argv[1] == "drive":
        a = sys.argv
        print(json.dumps(drive(a[2], int(a[3]), int(a[4]), float(a[5]), int(a[6]))))
    else:
        sys.exit("usage: python -m experiments.capacity.request_floor serve PORT | "
                 "drive HOST PORT N SECONDS SERVER_PID")  # fmt: skip
