"""nginx with TLS in front of app instances that already run: HTTP/2 on or off, nothing else.

What the browser measurements need to isolate one variable, the HTTP version between browser and
proxy: the same nginx, the same config (deploy/nginx/pushlab.conf.template, rendered by
:func:`experiments.cluster.render`), the same certificate, with ``http2`` on or off; the app
behind it always speaks HTTP/1.1. :class:`experiments.cluster.Cluster` starts its own instances
and a Redis broker; this starts only nginx, in front of e.g. a ``ServerThread`` (tests, browser
runs). The access log, when on, records for each request the HTTP version the client spoke and
the connection that carried it (:func:`access_lines`): the server's side of the protocol claim.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from experiments.cluster import NGINX, TEMPLATE, render
from experiments.processes import wait_port
from experiments.tls import TLSFiles, make_tls
from servers.launch import child_env, free_port

# What ``Front(http2=...)`` makes Chromium negotiate (PerformanceNavigationTiming.nextHopProtocol).
NEXT_HOP = {False: "http/1.1", True: "h2"}


class AccessLine(NamedTuple):
    """One access-log line (the :data:`experiments.cluster.ACCESS_LOG` format)."""

    connection: int  # nginx's serial number of the client connection
    request: int  # the request's number on that connection
    protocol: str  # $server_protocol: HTTP/1.1, HTTP/2.0
    method: str
    uri: str
    status: int


def access_lines(path: Path) -> list[AccessLine]:
    """The access log so far; nginx writes a line when a request ENDS (a stream: when closed)."""
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text().splitlines():
        conn, n, protocol, method, uri, status = raw.split(" ")
        lines.append(AccessLine(int(conn), int(n), protocol, method, uri, int(status)))
    return lines


@dataclass
class Front:
    """nginx on loopback: https on :attr:`https_port` in front of ``upstreams`` (app ports)."""

    root: Path
    upstreams: list[int]
    http2: bool = True
    max_streams: int | None = None  # http2_max_concurrent_streams; None: nginx's 128
    access_log: bool = False
    tls: TLSFiles | None = None  # a fresh local CA under ``root/tls`` when None
    nginx: str = NGINX
    https_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>``."""
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def access_log_path(self) -> Path:
        return self.root / "access.log"

    def start(self) -> Front:
        """Render the config, start nginx in the foreground, return once it listens."""
        self.root = self.root.resolve()
        for sub in ("tmp", "logs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.tls = self.tls or make_tls(self.root / "tls")
        self.https_port = free_port()
        conf = self.root / "nginx.conf"
        conf.write_text(
            render(
                prefix=self.root,
                http_port=free_port(),
                https_port=self.https_port,
                upstreams=self.upstreams,
                tls=self.tls,
                http2=self.http2,
                max_streams=self.max_streams,
                access_log=self.access_log,
            )
        )
        with open(self.root / "logs" / "nginx.log", "ab") as log:
            self.proc = subprocess.Popen(
                [self.nginx, "-p", str(self.root), "-c", str(conf), "-g", "daemon off;"],
                env=child_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=TEMPLATE.parent,
            )
        try:
            wait_port(self.https_port, self.proc, "nginx")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM nginx (a fast shutdown: open streams are cut) and wait for it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@contextlib.contextmanager
def running_front(root: Path, upstreams: list[int], **options: object) -> Iterator[Front]:
    """Start a :class:`Front` (options as its fields), yield it, always stop it."""
    front = Front(root, upstreams, **options)  # type: ignore[arg-type]
    front.start()
    try:
        yield front
    finally:
        front.stop()
