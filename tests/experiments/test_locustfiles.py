"""The Locust drivers deliver every event once, in all modes, against a real pushlab server.

Each test runs Locust as a subprocess (never in this process: it monkey-patches sockets) for a
few seconds; ``PUSHLAB_TEST_FULL=1`` runs longer and with more users.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from experiments.locust_runner import (
    LOCUSTFILES,
    LocustRunError,
    locust_bin,
    locustfile,
    run_locust,
)
from feed.wire.contract import TRANSPORTS
from servers.launch import ServerProcess
from tests.support import FULL, free_port, wait_until

pytestmark = pytest.mark.load

RATE = 50.0
USERS = 20 if FULL else 5
SECONDS = 10.0 if FULL else 3.0


def pushlab_server(rate: float, *extra: str) -> ServerProcess:
    """``python -m servers`` with the ticker at ``rate`` events/s, started."""
    # --admin: tests kick streams and steer the ticker, as the bench does.
    args = ["--rate", str(rate), "--admin", "--log-level", "warning", *extra]
    return ServerProcess(args=args).start()


@pytest.fixture(scope="module")
def server():
    srv = pushlab_server(RATE)
    yield srv
    srv.stop()


def assert_clean(result: dict, users: int) -> None:
    """Every user delivered, nothing lost, doubled or failed."""
    assert result["users_delivering"] == users, result
    assert result["delivered"] >= users * RATE * (SECONDS - 2) * 0.5, result
    assert (result["duplicates"], result["gaps"], result["silent_gaps"]) == (0, 0, 0), result
    assert result["failures"] == 0, result
    assert 0 < result["locust_csv_requests"] <= result["delivered"], result


def test_one_locustfile_per_transport():
    """Every transport of the contract has its Locust user (``--transport`` offers each)."""
    assert set(LOCUSTFILES) == set(TRANSPORTS)
    assert all(locustfile(t).is_file() for t in TRANSPORTS)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_headless_delivery(transport, server, tmp_path):
    """Each user class delivers the ticker's events exactly once, with latency and bytes."""
    env = {"LOCUST_FEED_POLL_INTERVAL_S": "0.1", "LOCUST_FEED_LONG_POLL_TIMEOUT_S": "5"}
    r = run_locust(transport, server.url, USERS, SECONDS, out_dir=tmp_path, extra_env=env)
    assert_clean(r, USERS)
    assert r["peak_open_sessions"] == USERS, r
    assert 0 < r["latency_ms_p50"] <= r["latency_ms_p99"] <= r["latency_ms_max"], r
    assert 60 < r["bytes_per_event"] < 200, r  # 64-byte payload + envelope
    assert r["generator"] == "locust" and r["locust_processes"] == 1
    assert 0 < r["generator_cpu_pct"] <= r["generator_cpu_peak_pct"] + 0.1, r
    assert 0 < r["machine_cpu_pct"] <= 100.5, r
    assert (tmp_path / "locust_stats.csv").exists()


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_distributed_processes(transport, server, tmp_path):
    """``--processes 2``: a master and two workers; the master's summary adds up both."""
    r = run_locust(transport, server.url, USERS + 1, SECONDS, processes=2, out_dir=tmp_path)
    assert_clean(r, USERS + 1)
    assert r["locust_workers"] == 2 and r["locust_processes"] == 3, r


def test_two_distributed_runs_at_once_keep_their_own_workers(server, tmp_path):
    """Each master binds its own free port: with Locust's fixed 5557 the second run's master
    could not bind, or its workers would join the first run's master."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> dict:
        out = tmp_path / str(i)
        out.mkdir()
        return run_locust("ws", server.url, USERS + i, SECONDS, processes=2, out_dir=out)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, (0, 1)))
    for i, r in enumerate(results):
        assert_clean(r, USERS + i)
        assert r["locust_workers"] == 2 and r["locust_processes"] == 3, r


@pytest.mark.parametrize("transport", ["ws", "sse", "stream"])
def test_resume_after_kicks(transport, server, tmp_path):
    """Streams cut by the server mid-run resume after their last seq: no loss, no duplicate."""
    stop = threading.Event()
    kicks = []

    def kick() -> None:
        time.sleep(1.5)
        while not stop.wait(0.7):
            kicks.append(httpx.post(f"{server.url}/admin/kick", params={"topic": "ticks"}))

    kicker = threading.Thread(target=kick)
    kicker.start()
    try:
        r = run_locust(transport, server.url, USERS, SECONDS + 1, out_dir=tmp_path)
    finally:
        stop.set()
        kicker.join()
    assert any(k.json()["kicked"] for k in kicks)
    assert r["reconnects"] >= USERS and r["failures"] >= USERS, r  # 1012 / end: kicked
    assert (r["duplicates"], r["gaps"], r["silent_gaps"]) == (0, 0, 0), r
    assert r["users_delivering"] == USERS


BLOCKING_SSE = '''
"""SSE users on a socket gevent does NOT patch: the negative control of cooperativeness."""
from gevent import monkey

import time
import orjson

import experiments.locustfiles.sse as sse_mod
from feed.wire.http1 import sse_request

RawSocket = monkey.get_original("socket", "socket")


class BlockingSSEUser(sse_mod.SSEUser):
    def session(self):
        host, port = self.host.removeprefix("http://").split(":")
        s = RawSocket()
        s.connect((host, int(port)))
        s.sendall(sse_request("x", {"topic": "ticks"}))
        try:
            f = s.makefile("rb")
            yield "ready", 0
            for n, line in enumerate(f):
                if line.startswith(b'data: {"topic"'):
                    obj = orjson.loads(line[6:])
                    yield obj["seq"], obj["ts_ns"], len(line) - 7, time.time_ns()
                if n > 30:
                    return
        finally:
            s.close()
'''


def test_clients_are_cooperative_under_gevent(tmp_path):
    """No user blocks the gevent hub (gevent's monitor says so); an unpatched socket would."""
    users = 8
    slow = pushlab_server(4)  # 250 ms between events: a blocking read holds the hub
    env = {"LOCUST_FEED_MONITOR_HUB_MS": "100"}
    try:
        for transport in ("ws", "sse", "stream"):
            r = run_locust(
                transport, slow.url, users, 3, out_dir=tmp_path / transport, extra_env=env
            )
            assert r["hub_blocked"] == 0, r
            assert r["peak_open_sessions"] == r["users_delivering"] == users, r
        # The negative control: the same check catches a client that blocks the gevent hub.
        path = tmp_path / "blocking_sse.py"
        path.write_text(BLOCKING_SSE)
        r = run_locust(
            "sse", slow.url, users, 2, out_dir=tmp_path / "neg", extra_env=env, locustfile_path=path
        )
    finally:
        slow.stop()
    assert r["hub_blocked"] > 0, r
    assert r["peak_open_sessions"] < users, r


def test_web_ui_runs_a_test(server, tmp_path):
    """With the web UI (no --headless), a test started from /swarm delivers and reports."""
    web_port = free_port()
    summary = tmp_path / "summary.json"
    cmd = [
        str(locust_bin()),
        "-f",
        str(locustfile("ws")),
        "--web-host",
        "127.0.0.1",
        "--web-port",
        str(web_port),
        "--host",
        server.url,
        "--feed-summary",
        str(summary),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ui = f"http://127.0.0.1:{web_port}"
    try:

        def up() -> bool:
            try:
                return httpx.get(ui, timeout=1, trust_env=False).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 20, "locust web UI")
        form = {"user_count": 3, "spawn_rate": 3, "host": server.url, "feed_topic": "ticks"}
        assert httpx.post(f"{ui}/swarm", data=form, trust_env=False).status_code == 200

        def delivered() -> int:
            stats = httpx.get(f"{ui}/stats/requests", trust_env=False).json()["stats"]
            return sum(s["num_requests"] for s in stats if s["method"] == "ws")

        wait_until(lambda: delivered() >= 30, 20, "events in the web UI stats")
        httpx.get(f"{ui}/stop", trust_env=False)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    result = json.loads(summary.read_text())
    assert result["delivered"] >= 30 and result["silent_gaps"] == 0 == result["duplicates"]


def test_never_imports_locust_here():
    """Locust stays out of the test process (it would monkey-patch pytest's sockets)."""
    assert "locust" not in sys.modules and "gevent.monkey" not in sys.modules
    assert os.access(locust_bin(), os.X_OK)
    assert Path(locustfile("websocket")).name == "websocket.py"


def test_hard_timeout_kills_a_stuck_run(server, tmp_path):
    """A run whose hub is blocked for good is killed at the hard timeout, with a clear error."""
    path = tmp_path / "stuck.py"
    path.write_text(BLOCKING_SSE.replace("ticks HTTP", "quiet HTTP").replace("n > 30", "False"))
    started = time.monotonic()
    with pytest.raises(LocustRunError, match="overran"):
        run_locust(
            "sse", server.url, 1, 1, out_dir=tmp_path, locustfile_path=path, hard_timeout_s=4
        )
    assert time.monotonic() - started < 4 + 5 + 5


def test_separate_master_and_worker_share_options(tmp_path):
    """A worker started on its own gets the master's feed options (here: the topic)."""
    srv = pushlab_server(RATE, "--topic", "elsewhere")
    port = free_port()
    summary = tmp_path / "summary.json"
    common = [str(locust_bin()), "-f", str(locustfile("ws"))]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    master = subprocess.Popen(
        [*common, "--master", "--headless", "--expect-workers", "1", "--users", "3",
         "--spawn-rate", "3", "--run-time", "3s", "--stop-timeout", "0", "--host", srv.url,
         "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
         "--feed-summary", str(summary), "--only-summary"],
        env=env | {"LOCUST_FEED_TOPIC": "elsewhere"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    worker = subprocess.Popen(
        [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
        env=env,  # no LOCUST_FEED_TOPIC: the master's value must reach it
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert master.wait(40) == 0
        worker.wait(20)
    finally:
        for p in (master, worker):
            if p.poll() is None:
                p.kill()
                p.wait()
        srv.stop()
    result = json.loads(summary.read_text())
    assert result["workers"] == 1 and result["users_delivering"] == 3, result
    assert result["delivered"] > 0 and result["silent_gaps"] == 0 == result["duplicates"]


def test_ws_users_answer_the_heartbeat(tmp_path):
    """With a fast server heartbeat, Locust's WebSocket users answer every ping: nothing cut."""
    srv = pushlab_server(RATE, "--ws-ping-interval", "0.2", "--ws-ping-timeout", "0.5")
    try:
        r = run_locust("ws", srv.url, USERS, SECONDS, out_dir=tmp_path)
        metrics = httpx.get(f"{srv.url}/metrics", trust_env=False).text
    finally:
        srv.stop()
    assert_clean(r, USERS)
    assert r["peak_open_sessions"] == USERS, r
    rtts = next(x for x in metrics.splitlines() if x.startswith("pushlab_ping_rtt_seconds_count"))
    assert float(rtts.split()[-1]) >= USERS * 3, rtts
    assert 'pushlab_closes_total{code="1011"' not in metrics
