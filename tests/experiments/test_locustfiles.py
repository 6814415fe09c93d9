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

from experiments.locust_runner import locust_bin, locustfile, run_locust
from tests.experiments.procs import pushlab_server
from tests.support import FULL, free_port, wait_until

pytestmark = pytest.mark.load

RATE = 50.0
USERS = 20 if FULL else 5
SECONDS = 10.0 if FULL else 3.0


@pytest.fixture(scope="module")
def server():
    srv = pushlab_server(RATE).start()
    yield srv
    srv.stop()


def assert_clean(result: dict, users: int) -> None:
    """Every user delivered, nothing lost, doubled or failed."""
    assert result["users_delivering"] == users, result
    assert result["delivered"] >= users * RATE * (SECONDS - 2) * 0.5, result
    assert (result["duplicates"], result["gaps"], result["silent_gaps"]) == (0, 0, 0), result
    assert result["failures"] == 0, result
    assert 0 < result["locust_csv_requests"] <= result["delivered"], result


@pytest.mark.parametrize("transport", ["ws", "sse", "poll", "long-poll"])
def test_headless_delivery(transport, server, tmp_path):
    """Each user class delivers the ticker's events exactly once, with latency and bytes."""
    env = {"LOCUST_FEED_POLL_INTERVAL_S": "0.1", "LOCUST_FEED_LONG_POLL_TIMEOUT_S": "5"}
    r = run_locust(transport, server.url, USERS, SECONDS, out_dir=tmp_path, extra_env=env)
    assert_clean(r, USERS)
    assert r["peak_open_sessions"] == USERS, r
    assert 0 < r["latency_ms_p50"] <= r["latency_ms_p99"] <= r["latency_ms_max"], r
    assert 60 < r["bytes_per_event"] < 200, r  # 64-byte payload + envelope
    assert r["generator"] == "locust" and r["locust_processes"] == 1
    assert (tmp_path / "locust_stats.csv").exists()


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_distributed_processes(transport, server, tmp_path):
    """``--processes 2``: a master and two workers; the master's summary adds up both."""
    r = run_locust(transport, server.url, USERS + 1, SECONDS, processes=2, out_dir=tmp_path)
    assert_clean(r, USERS + 1)
    assert r["locust_workers"] == 2 and r["locust_processes"] == 3, r


@pytest.mark.parametrize("transport", ["ws", "sse"])
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

RawSocket = monkey.get_original("socket", "socket")


class BlockingSSEUser(sse_mod.SSEUser):
    def session(self):
        host, port = self.host.removeprefix("http://").split(":")
        s = RawSocket()
        s.connect((host, int(port)))
        s.sendall(b"GET /sse?topic=ticks HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
        try:
            f = s.makefile("rb")
            yield "ready", 0
            for n, line in enumerate(f):
                if line.startswith(b'data: {"topic"'):
                    obj = orjson.loads(line[6:])
                    yield obj["seq"], obj["ts_ns"], len(line) - 7, time.time_ns()
                if n > 200:
                    return
        finally:
            s.close()
'''


def test_clients_are_cooperative_under_gevent(server, tmp_path):
    """N users hold N streams at once; a blocking socket would serialise them (shown below)."""
    users = 8
    for transport in ("ws", "sse"):
        r = run_locust(transport, server.url, users, 3, out_dir=tmp_path / transport)
        assert r["peak_open_sessions"] == users, r
        assert r["users_delivering"] == users, r
    # The negative control: the same check catches a client that blocks the gevent hub.
    path = tmp_path / "blocking_sse.py"
    path.write_text(BLOCKING_SSE)
    r = run_locust("sse", server.url, users, 3, out_dir=tmp_path / "blocking", locustfile_path=path)
    assert r["peak_open_sessions"] == 1, r


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
        proc.wait(20)
    result = json.loads(summary.read_text())
    assert result["delivered"] >= 30 and result["silent_gaps"] == 0 == result["duplicates"]


def test_never_imports_locust_here():
    """Locust stays out of the test process (it would monkey-patch pytest's sockets)."""
    assert "locust" not in sys.modules and "gevent.monkey" not in sys.modules
    assert os.access(locust_bin(), os.X_OK)
    assert Path(locustfile("websocket")).name == "websocket.py"
