"""`pushlab cluster up/down` as a user runs it, and the rendered nginx config as nginx sees it."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from experiments.cluster import render
from experiments.tls import make_tls
from servers.launch import child_env
from tests.redis_support import require_redis
from tests.support import MS, free_port, require


@pytest.mark.nginx
@pytest.mark.parametrize("sticky", [False, True])
@pytest.mark.parametrize("buffering", [False, True])
def test_rendered_config_passes_nginx_t(tmp_path: Path, sticky: bool, buffering: bool):
    """Every variant of the template is a valid nginx 1.22 config (`nginx -t`)."""
    nginx = require("nginx", "config check")
    tls = make_tls(tmp_path / "tls")
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / "tmp" / sub).mkdir(parents=True)
    conf = tmp_path / "nginx.conf"
    text = render(
        prefix=tmp_path,
        http_port=free_port(),
        https_port=free_port(),
        upstreams=[free_port(), free_port()],
        tls=tls,
        sticky=sticky,
        sse_buffering=buffering,
    )
    assert ("\n        hash $pushlab_sticky consistent;" in text) == sticky
    assert ("\n            proxy_buffering on;" in text) == buffering
    conf.write_text(text)
    check = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr


@pytest.mark.nginx
@pytest.mark.parametrize(
    ("http2", "max_streams", "access_log"),
    [(False, None, True), (True, 8, True), (True, None, False)],
)
def test_protocol_variants_pass_nginx_t(tmp_path: Path, http2, max_streams, access_log):
    """HTTP/2 off, a lower stream limit and the protocol access log are valid nginx 1.22 too."""
    nginx = require("nginx", "config check")
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / "tmp" / sub).mkdir(parents=True)
    https_port = free_port()
    text = render(
        prefix=tmp_path,
        http_port=free_port(),
        https_port=https_port,
        upstreams=[free_port()],
        tls=make_tls(tmp_path / "tls"),
        http2=http2,
        max_streams=max_streams,
        access_log=access_log,
    )
    assert (f":{https_port} ssl http2;" in text) == http2
    assert ("http2_max_concurrent_streams 8;" in text) == bool(max_streams)
    assert ("access_log off;" in text) != access_log
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    check = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr


@pytest.mark.nginx
@pytest.mark.redis
@pytest.mark.parametrize("how", ["down", "ctrl-c"])
def test_cluster_up_then_down(tmp_path: Path, how: str):
    """`cluster up` serves https via nginx; `cluster down` or Ctrl-C stops every process."""
    require("nginx", "the cluster")
    require_redis()
    root = tmp_path / "c"
    env = child_env()
    up = subprocess.Popen(
        [sys.executable, "-m", "pushlab", "cluster", "up", "--instances", "2", "--dir", str(root)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert up.stdout is not None
        url = ""
        deadline = time.monotonic() + 30 * MS
        while not url and time.monotonic() < deadline:
            line = up.stdout.readline()
            if line.startswith("pushlab cluster: "):
                url = line.split()[2]
        assert url.startswith("https://127.0.0.1:")
        pids = [int(p.read_text()) for p in (root / "pids").glob("*.pid")]
        assert len(pids) == 4  # 2 instances, nginx, up
        ca = ssl.create_default_context(cafile=str(root / "tls" / "ca.pem"))
        r = httpx.get(f"{url}/healthz", verify=ca, trust_env=False)
        assert r.json()["broker"]["backend"] == "redis"
        if how == "ctrl-c":
            up.send_signal(signal.SIGINT)
        else:
            down = subprocess.run(
                [sys.executable, "-m", "pushlab", "cluster", "down", "--dir", str(root)],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            assert down.returncode == 0, down.stderr
        assert up.wait(30) == 0
        for pid in pids:
            assert not _alive(pid), pid
        assert not list((root / "pids").glob("*.pid"))
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        if up.stdout is not None:
            up.stdout.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
