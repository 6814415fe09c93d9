"""Climbing the ladder: one fresh server per rung, idle connections, the figures, one cell each.

Per rung (:class:`~experiments.ladder.cells.Rung`):

1. a fresh server process (memory freed by an earlier rung would be reused without growing RSS,
   so a second rung on the same process reads far too low); RSS and ``/proc/net/sockstat``
   after one ``/healthz``;
2. ``n`` connections from holder processes (:mod:`experiments.ladder.holder`, at most
   ``per_holder`` each, each on its own source address in 127.50-59.x.x): handshakes/s is the
   connections over the span from the first connect to the last answer head, with the server's
   CPU over that span;
3. once the server reports holding them (``/healthz``; Node and workers: the holders' word),
   RSS and kernel memory again, per connection: ``/proc/net/sockstat``'s TCP buffer pages
   (near 0 for idle sockets: nothing is queued) and the socket objects themselves
   (``/proc/slabinfo``: TCP sock, inode, file);
4. ``idle_s`` of idle time (at least one heartbeat of each transport): the server's CPU per
   second, and ``/healthz`` latency probed through it;
5. one published event: the latency to every connection (p50, p99, last), with the number
   that got it.

Kernel memory is machine-wide: it counts both ends of each loopback connection (the client's
share is the same for every server, so the figures compare) and whatever else runs meanwhile.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from experiments.baseline import NodeServer, node_available
from experiments.capacity.request_floor import FloorServer
from experiments.children import rss_bytes
from experiments.cpuclock import tree_cpu_s
from experiments.ladder.cells import Rung
from experiments.ladder.holder import IN_FLIGHT
from experiments.processes import delete_prefix
from feed.settings import Settings
from servers.launch import ServerProcess, settings_env

PAGE = os.sysconf("SC_PAGE_SIZE")
TOPIC = "ticks"


@dataclass(frozen=True)
class Params:
    """What a run was asked (saved in ``meta.json``)."""

    per_holder: int = 5_000
    # Connects in flight at once over all holder processes (each gets its share, at most
    # holder.IN_FLIGHT). A server process answers 503 to the oldest connection still sending its
    # head once more than http_max_pending (1,024 by default) wait and it has waited 1 s
    # (servers/fastpath/http_protocol.py): 8 holders x 256 on CPU-starved workers crossed that.
    # Half the cap of one process keeps the ramp below it without weakening the guard.
    connects_in_flight: int = 512
    idle_s: float = 20.0
    # Heartbeats: pushlab's defaults (WS ping 20 s, SSE comment 15 s); Node's SSE the same.
    ws_ping_interval_s: float = 20.0
    keepalive_s: float = 15.0
    healthz_every_s: float = 0.25
    settle_s: float = 1.0
    hold_timeout_s: float = 120.0
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "pushlab-ladder"


def sources(seed: int | None = None) -> Iterator[str]:
    """Source addresses in 127.50-59.x.x, from a fresh /24 per run (TIME_WAIT is per address)."""
    rng = random.Random(seed)
    b, c = rng.randrange(50, 60), rng.randrange(0, 256)
    for d in range(1, 255):
        yield f"127.{b}.{c}.{d}"


def sockstat() -> dict[str, int]:
    """``TCP:`` line of ``/proc/net/sockstat``: ``inuse``, ``tw``, ``alloc``, ``mem`` (pages)."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            parts = line.split()[1:]
            return {k: int(v) for k, v in zip(parts[::2], parts[1::2], strict=True)}
    raise RuntimeError("no TCP line in /proc/net/sockstat")


# Kernel objects of a TCP socket held open (/proc/slabinfo): the socket, its inode, its file.
SLABS = ("TCP", "sock_inode_cache", "filp")


def slab_bytes() -> int:
    """Bytes in the :data:`SLABS` caches (active objects x object size); 0 when unreadable."""
    try:
        text = Path("/proc/slabinfo").read_text()
    except OSError:
        return 0
    total = 0
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] in SLABS:
            total += int(parts[1]) * int(parts[3])
    return total


@dataclass
class Server:
    """A fresh server for one rung: :class:`servers.launch.ServerProcess` (``python``, and
    ``workers`` over Redis), :class:`experiments.baseline.NodeServer` or the ``floor`` app
    (:class:`experiments.capacity.request_floor.FloorServer`); ``pid`` is the root of its tree,
    and a restart comes back on the same port (not the floor's: it has no restart)."""

    rung: Rung
    params: Params
    rate: float = 0.0  # the server's own ticker, events/s (0: off)
    env: dict[str, str] = field(default_factory=dict)  # extra PUSHLAB_* settings
    prefix: str = ""
    log: Path | None = None
    proc: ServerProcess | NodeServer | FloorServer | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def port(self) -> int:
        assert self.proc is not None
        return self.proc.port

    def _build(self, log: Path) -> ServerProcess | NodeServer | FloorServer:
        p, r = self.params, self.rung
        if r.server == "floor":
            return FloorServer("python", log_path=log)
        if r.server == "node":
            ok, why = node_available()
            if not ok:
                raise RuntimeError(why)
            flags = ["--keepalive-s", f"{p.keepalive_s:g}"]
            return NodeServer(rate=self.rate, topic=TOPIC, flags=flags, log_path=log)
        env = {
            "PUSHLAB_TICKER_RATE": f"{self.rate:g}",
            "PUSHLAB_TICKER_TOPIC": TOPIC,
            "PUSHLAB_LOG_LEVEL": "warning",
            "PUSHLAB_WS_PING_INTERVAL_S": f"{p.ws_ping_interval_s:g}",
            "PUSHLAB_KEEPALIVE_S": f"{p.keepalive_s:g}",
        }
        if r.sse_impl:
            env["PUSHLAB_SSE_IMPL"] = r.sse_impl
        if r.workers > 1:
            self.prefix = f"{p.redis_prefix}-{os.getpid()}-{time.time_ns()}"
            env |= {"PUSHLAB_BROKER": p.redis_url, "PUSHLAB_REDIS_PREFIX": self.prefix}
        return ServerProcess(
            env=env | self.env, log_path=log, workers=r.workers, stop_timeout_s=20.0
        )

    def start(self, log_dir: Path) -> Server:
        """Start (or start again, on the same port) and wait until ``/healthz`` answers."""
        if self.proc is None:
            self.log = log_dir / f"server-{self.rung.name}.log"
            self.proc = self._build(self.log)
        self.proc.start()
        return self

    def settings_changed(self) -> dict[str, str]:
        """The ``PUSHLAB_*`` settings a pushlab server runs with that differ from the defaults
        (inherited ones too, e.g. ``PUSHLAB_HTTP_MAX_PENDING``); the JWT secret left out."""
        assert isinstance(self.proc, ServerProcess)
        changed = settings_env(Settings.from_env(self.proc.child_env()))
        return {k: v for k, v in changed.items() if k != "PUSHLAB_AUTH_SECRET"}

    def kill(self) -> None:
        """SIGKILL, as in a crash (every process of its group); keeps the port for a restart."""
        if isinstance(self.proc, ServerProcess):
            self.proc.kill()
        elif self.proc is not None and self.proc.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.stop()  # reaps it

    def stop(self) -> None:
        """SIGTERM (workers pass it on), SIGKILL after a bound; the run's Redis keys go."""
        if self.proc is not None:
            self.proc.stop()
        if self.prefix:
            with contextlib.suppress(Exception):
                delete_prefix(self.params.redis_url, self.prefix)


# servers/fastpath/http_protocol.py's WARNING when it closes the oldest pending connection.
EVICTED = re.compile(r"pending request heads at the cap \((\d+)\): (\d+) connections closed so far")


def evicted_at_least(log: Path) -> int:
    """Connections a pushlab server closed with 503 at its cap of pending request heads.

    Each process logs its running count at most once a second, and with workers the lines do
    not say which process wrote them: the largest logged count is a lower bound of the total.
    """
    if not log.exists():
        return 0
    counts = [int(m.group(2)) for m in EVICTED.finditer(log.read_text(errors="replace"))]
    return max(counts, default=0)


def in_flight_share(n: int, per: int, in_flight: int) -> int:
    """Connects at once per holder when ``n`` connections go over holders of ``per`` each and
    all of them together keep at most ``in_flight`` (at least 1, at most holder.IN_FLIGHT)."""
    return max(1, min(IN_FLIGHT, in_flight // math.ceil(n / per)))


@dataclass
class Holders:
    """The holder processes of one rung."""

    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def start(
        self, spec: dict[str, Any], n: int, per: int, addrs: Iterator[str], in_flight: int
    ) -> int:
        """``ceil(n / per)`` holders sharing ``in_flight`` connects at once; their total."""
        share = in_flight_share(n, per, in_flight)
        while n > 0:
            k = min(per, n)
            one = spec | {"n": k, "source": next(addrs), "in_flight": share}
            argv = [sys.executable, "-m", "experiments.ladder.holder", json.dumps(one)]
            self.procs.append(
                subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            )
            n -= k
        return share * len(self.procs)

    def read(self) -> list[dict[str, Any]]:
        out = []
        for p in self.procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            if not line:
                raise RuntimeError(f"holder {p.pid} exited with {p.poll()}")
            out.append(json.loads(line))
        return out

    def ask(self, cmd: dict[str, Any]) -> list[dict[str, Any]]:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write(json.dumps(cmd) + "\n")
            p.stdin.flush()
        return self.read()

    def cpu_s(self) -> float:
        total = 0.0
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                total += tree_cpu_s(p.pid)
        return total

    def stop(self) -> None:
        for p in self.procs:
            with contextlib.suppress(OSError, ValueError):
                assert p.stdin is not None
                p.stdin.write('{"cmd": "stop"}\n')
                p.stdin.close()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
            if p.stdout is not None:
                p.stdout.close()


def get(port: int, path: str, conn: http.client.HTTPConnection | None = None) -> tuple[Any, float]:
    """``(JSON answer, seconds)`` of one GET on ``conn`` (or a new connection)."""
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t = time.perf_counter()
    c.request("GET", path)
    body = c.getresponse().read()
    took = time.perf_counter() - t
    if conn is None:
        c.close()
    return json.loads(body), took


def publish(port: int, topic: str = TOPIC) -> int:
    """POST one event; its seq."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = json.dumps({"ladder": time.time_ns()})
        c.request("POST", f"/publish?topic={topic}", body, {"Content-Type": "application/json"})
        answer = c.getresponse()
        data = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"publish: HTTP {answer.status} {data[:200]!r}")
        return int(json.loads(data)["seq"])
    finally:
        c.close()


def held_by_server(server: Server, transport: str) -> int | None:
    """Connections of ``transport`` the server reports (None: it cannot say for all of it)."""
    if server.rung.server != "python":
        return None
    health, _ = get(server.port, "/healthz")
    return int(health.get("connections", {}).get(transport, 0))


def worker_open(server: Server) -> list[int]:
    """Established connections on the server's port, per worker process."""
    counts = []
    for child in psutil.Process(server.pid).children():
        conns = child.net_connections(kind="tcp")
        counts.append(
            sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED
                and c.laddr and c.laddr.port == server.port)
        )  # fmt: skip
    return counts


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def measure(rung: Rung, params: Params, raw: Path, addrs: Iterator[str]) -> dict[str, Any]:
    """One rung on a fresh server: the cell (see the module docstring)."""
    server = Server(rung, params).start(raw)
    holders = Holders()
    cell: dict[str, Any] = rung.as_dict() | {"server_pid": server.pid, "tags": ["ladder"]}
    if server.prefix:
        cell["redis_prefix"] = server.prefix
    if isinstance(server.proc, ServerProcess):
        cell["server_env"] = server.settings_changed()
    try:
        get(server.port, "/healthz")
        time.sleep(params.settle_s)
        rss0, sock0, slab0 = rss_bytes(server.pid), sockstat(), slab_bytes()
        cell["server_rss_mb_before"] = rss0 / 2**20
        cpu0, gen0 = tree_cpu_s(server.pid), 0.0
        spec = {"transport": rung.transport, "port": server.port, "topic": TOPIC}
        in_flight = holders.start(spec, rung.n, params.per_holder, addrs, params.connects_in_flight)
        opened = holders.read()
        cpu1, gen1 = tree_cpu_s(server.pid), holders.cpu_s()
        connected = sum(o["connected"] for o in opened)
        span_s = (max(o["t_last_ns"] for o in opened) - min(o["t_first_ns"] for o in opened)) / 1e9
        cell |= {
            "holders": len(holders.procs), "connects_in_flight": in_flight,
            "connected": connected,
            "connect_errors": sum((Counter(o.get("error_counts", {})) for o in opened), Counter()),
            "connect_s": span_s, "handshakes_per_s": connected / span_s if span_s > 0 else math.nan,
            "connect_server_cpu_s": cpu1 - cpu0,
            # Mean per holder process, start-up included: an upper bound of its connect work.
            "connect_generator_cpu_pct": 100 * (gen1 - gen0) / span_s / len(holders.procs)
            if span_s > 0 else math.nan,
        }  # fmt: skip
        deadline = time.monotonic() + params.hold_timeout_s
        while (held := held_by_server(server, rung.transport)) is not None and held < connected:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        cell["server_held"] = held
        time.sleep(params.settle_s)
        status = holders.ask({"cmd": "status"})
        open_now = sum(s["open"] for s in status)
        rss1, sock1, slab1 = rss_bytes(server.pid), sockstat(), slab_bytes()
        cell |= {
            "open": open_now, "server_rss_mb": rss1 / 2**20,
            "rss_kib_per_conn": (rss1 - rss0) / open_now / 1024 if open_now else math.nan,
            "tcp_mem_kib_per_conn": (sock1["mem"] - sock0["mem"]) * PAGE / open_now / 1024
            if open_now else math.nan,
            "tcp_inuse_delta": sock1["inuse"] - sock0["inuse"],
            "slab_kib_per_conn": (slab1 - slab0) / open_now / 1024
            if open_now and slab0 else math.nan,
        }  # fmt: skip
        if rung.workers > 1:
            cell["worker_open"] = worker_open(server)
        cell |= idle_window(server, holders, params, raw / f"{rung.name}.healthz.npy")
        if rung.server != "floor":  # the floor app has no feed to publish to
            cell |= broadcast(server, holders, open_now, raw / f"{rung.name}.broadcast.npy")
        status = holders.ask({"cmd": "status"})
        cell["open_after"] = sum(s["open"] for s in status)
        cell["status"] = "ok" if open_now == rung.n and cell["open_after"] == rung.n else "partial"
    except Exception as exc:  # noqa: BLE001 - a rung that breaks says why; the climb goes on
        cell |= {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    finally:
        holders.stop()
        server.stop()
    if rung.server != "node" and server.log is not None:
        cell["server_evicted_at_least"] = evicted_at_least(server.log)
    return cell


def idle_window(server: Server, holders: Holders, params: Params, raw: Path) -> dict[str, Any]:
    """Server CPU per second over ``idle_s`` of heartbeats, with ``/healthz`` probed through it."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    probes: list[float] = []
    t0, cpu0, gen0 = time.perf_counter(), tree_cpu_s(server.pid), holders.cpu_s()
    try:
        while time.perf_counter() - t0 < params.idle_s:
            try:
                probes.append(get(server.port, "/healthz", conn)[1] * 1000)
            except (OSError, http.client.HTTPException):
                conn.close()  # the server closed an idle keep-alive: next probe reconnects
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            time.sleep(params.healthz_every_s)
    finally:
        conn.close()
    wall = time.perf_counter() - t0
    cpu, gen = tree_cpu_s(server.pid) - cpu0, holders.cpu_s() - gen0
    np.save(raw, np.asarray(probes))
    return {
        "idle_s": wall, "idle_server_cpu_pct": 100 * cpu / wall,
        "idle_generator_cpu_pct": 100 * gen / wall,
        "healthz_ms_p50": pct(probes, 50), "healthz_ms_p99": pct(probes, 99),
        "healthz_ms_max": max(probes, default=math.nan), "healthz_probes": len(probes),
    }  # fmt: skip


def broadcast(server: Server, holders: Holders, n: int, raw: Path) -> dict[str, Any]:
    """Publish one event; wait (bounded) until every open connection has it; its latencies."""
    holders.ask({"cmd": "mark"})
    seq = publish(server.port)
    deadline = time.monotonic() + 60
    while True:
        answers = holders.ask({"cmd": "latency", "seq": seq})
        got = sum(a["got"] for a in answers)
        if got >= n or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    lat = sorted(x / 1e6 for a in answers for x in a["lat_ns"])
    np.save(raw, np.asarray(lat))
    return {
        "broadcast_got": got, "broadcast_ms_p50": pct(lat, 50), "broadcast_ms_p99": pct(lat, 99),
        "broadcast_ms_last": lat[-1] if lat else math.nan,
    }  # fmt: skip
