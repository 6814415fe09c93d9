"""The one launcher: a server in a thread or as a process, and the one environment policy."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from feed.settings import Settings
from servers.fastpath.ws_protocol import uvicorn_ws
from servers.launch import (
    ServerExited,
    ServerProcess,
    ServerThread,
    bind,
    child_env,
    healthy,
    settings_env,
)
from servers.runner import PushlabServer
from tests.support import MS, wait_until


def test_settings_env_round_trips_through_the_child_reading():
    """settings_env names only what differs from the defaults, and Settings.from_env of it
    builds the same settings (host and port aside: the socket decides those)."""
    s = Settings(
        ticker_rate=2.5, admin=True, ws_compression=True, sse_impl="pushlab", history=7, port=9
    )
    env = settings_env(s)
    assert env == {
        "PUSHLAB_TICKER_RATE": "2.5",
        "PUSHLAB_ADMIN": "1",
        "PUSHLAB_WS_COMPRESSION": "1",
        "PUSHLAB_SSE_IMPL": "pushlab",
        "PUSHLAB_HISTORY": "7",
    }
    assert Settings.from_env(env) == s.replace(port=Settings().port)
    assert settings_env(Settings()) == {}


def test_child_env_keeps_settings_drops_other_pushlab_names_refuses_typos():
    """One policy: non-PUSHLAB variables and real settings pass, the suite's and the runs' own
    PUSHLAB_* names do not (the child would refuse them), an override that is a typo fails here,
    and explicit settings are the child's whole configuration."""
    parent = {
        "PATH": "/bin",
        "PUSHLAB_SSE_IMPL": "pushlab",
        "PUSHLAB_TEST_MS": "3",
        "PUSHLAB_RESULTS": "/tmp/r",
    }
    env = child_env({"PUSHLAB_HISTORY": "5"}, environ=parent)
    assert env == {"PATH": "/bin", "PUSHLAB_SSE_IMPL": "pushlab", "PUSHLAB_HISTORY": "5"}
    Settings.from_env(env)  # the child accepts every name it gets
    with pytest.raises(ValueError, match="PUSHLAB_HISTROY"):
        child_env({"PUSHLAB_HISTROY": "5"}, environ=parent)
    # Given settings, they replace the inherited ones: the default sse_impl stays the default.
    given = child_env(settings=Settings(history=9), environ=parent)
    assert given == {"PATH": "/bin", "PUSHLAB_HISTORY": "9"}


def test_thread_serves_with_the_config_pushlab_serve_uses(settings):
    """The thread runs PushlabServer with build_config's WebSocket class and lifespan; stop()
    ends it and frees the port, restart() serves again on the same port."""
    server = ServerThread(settings).start()
    try:
        assert isinstance(server.uvicorn, PushlabServer)
        config = server.uvicorn.config
        assert config.ws is uvicorn_ws(settings.ws_impl) and config.lifespan == "on"
        assert httpx.get(server.url + "/healthz", trust_env=False).status_code == 200
        port = server.port
        server.restart()
        assert server.port == port and healthy(server.url)
    finally:
        server.stop()
    assert not healthy(server.url)


async def test_thread_under_hypercorn_serves_the_same_app(settings):
    """server="hypercorn" serves create_app over HTTP/1.1 too (the h2c tests use its HTTP/2)."""
    with ServerThread(settings, server="hypercorn") as server:
        async with httpx.AsyncClient(trust_env=False) as http:
            r = await http.post(f"{server.url}/publish", params={"topic": "t"}, json={"a": 1})
            assert r.status_code == 200
            assert (await http.get(f"{server.url}/poll", params={"topic": "t"})).status_code == 200
    assert not healthy(server.url)


def test_thread_start_failure_is_an_error(settings):
    """A port already taken is an OSError at start, not a thread that dies quietly."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            ServerThread(settings, port=taken.getsockname()[1]).start()


def test_process_serves_on_the_bound_socket_and_stops_cleanly(tmp_path):
    """The child serves on the socket the parent bound (--fd), with its settings from the
    environment; SIGTERM drains it to exit 0 with no traceback in its log."""
    log = tmp_path / "server.log"
    server = ServerProcess(
        Settings(history=3, ticker_rate=0),
        env={"PUSHLAB_ADMIN": "1"},
        args=["--log-level", "info"],
        log_path=log,
    ).start()
    try:
        assert server.port != 0 and server.ws_url == f"ws://127.0.0.1:{server.port}"
        with httpx.Client(base_url=server.url, trust_env=False) as http:
            for i in range(5):
                http.post("/publish", params={"topic": "t"}, json={"i": i})
            r = http.get("/poll", params={"topic": "t", "since": 0})
        assert [e["seq"] for e in r.json()["events"]] == [3, 4, 5]  # history=3 reached the child
        pid = server.pid
    finally:
        code = server.stop()
    # uvicorn re-raises the captured SIGTERM after a clean shutdown; "Finished" says it was.
    assert code == -signal.SIGTERM and "Finished server process" in server.log(), server.log()
    assert "Traceback" not in server.log() and server.log_path == log
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not healthy(server.url)


def test_process_crash_surfaces_as_an_error_with_its_log():
    """A child that cannot start (an invalid setting) is an error that carries its log."""
    server = ServerProcess(env={"PUSHLAB_HISTORY": "0"})
    with pytest.raises(ServerExited, match="history must be >= 1") as caught:
        server.start()
    assert "exited with" in str(caught.value) and server.proc is None


def test_process_stop_kills_a_child_that_ignores_sigterm(tmp_path):
    """stop(): SIGTERM, a bounded wait, then SIGKILL (here a child that blocks SIGTERM)."""
    server = ServerProcess(prefix=[sys.executable, str(_ignoring_sigterm(tmp_path))])
    server.stop_timeout_s = 0.5 * MS
    server.start()
    assert server.stop() == -9


def _ignoring_sigterm(tmp_path):
    """A wrapper that ignores SIGTERM and outlives the server it runs (uvicorn installs its own
    SIGTERM handler, so the server itself cannot be made to ignore it)."""
    script = tmp_path / "ignore_term.py"
    script.write_text(
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "fd = int(sys.argv[sys.argv.index('--fd') + 1])\n"
        "subprocess.call(sys.argv[1:], pass_fds=(fd,))\n"
        "time.sleep(60)\n"
    )
    return script


def test_fd_flag_serves_an_inherited_socket(tmp_path):
    """``python -m servers --fd N`` by hand: host and port come from the socket."""
    sock = bind()
    port = sock.getsockname()[1]
    env = child_env({"PUSHLAB_TICKER_RATE": "0"})
    with open(tmp_path / "log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "servers", "--fd", str(sock.fileno())],
            env=env,
            pass_fds=(sock.fileno(),),
            stdout=log,
            stderr=log,
        )
    sock.close()
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "log").read_text()
            return healthy(url)

        wait_until(up, 30, "/healthz of python -m servers --fd")
    finally:
        proc.terminate()
        assert proc.wait(10 * MS) == -signal.SIGTERM
