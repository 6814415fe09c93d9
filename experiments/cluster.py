"""N app instances + nginx (TLS, HTTP/2, WebSocket upgrade) on loopback, started and stopped here.

``Cluster(...).start()`` renders deploy/nginx/pushlab.conf.template into a private prefix, makes a
local CA and certificate (experiments/tls.py), starts the instances as ``python -m servers``
subprocesses (``servers.launch.ServerProcess``: each on a socket bound here; shared Redis broker,
one key prefix per run), then nginx with
``-g 'daemon off;'``. Every process id is written to ``<root>/pids/`` so ``pushlab cluster down``
can stop them by pid; :meth:`Cluster.stop` also deletes the run's Redis keys. Faults for tests and
runs: :meth:`kill` (SIGKILL an instance), :meth:`restart`, :meth:`rolling_restart`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from experiments.processes import delete_prefix, wait_port
from experiments.tls import TLSFiles, make_tls
from servers.launch import ServerProcess, child_env, free_port

TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "nginx" / "pushlab.conf.template"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
# The address nginx connects to the instances from (loopback to loopback): the one peer whose
# X-Forwarded-For the instances believe (PUSHLAB_TRUSTED_PROXIES).
NGINX_ADDRESS = "127.0.0.1"
STICKY_COOKIE = (
    'add_header Set-Cookie "pushlab_sticky=$pushlab_sticky; Path=/; Secure; HttpOnly; '
    'SameSite=Lax" always;'
)
SSE_UNBUFFERED = "            proxy_buffering off;"
# Per request: connection serial number, request number on it, HTTP version the client spoke,
# method, URI, status. Read back by experiments/front.py (AccessLine).
ACCESS_LOG = (
    "log_format pushlab_proto '$connection $connection_requests $server_protocol "
    "$request_method $request_uri $status';\n"
    "    access_log {prefix}/access.log pushlab_proto;"
)
# The pitfall, for measurement only: buffering on AND the app's X-Accel-Buffering ignored.
SSE_BUFFERED = (
    "            proxy_buffering on;\n            proxy_ignore_headers X-Accel-Buffering;"
)


def render(
    *,
    prefix: Path,
    http_port: int,
    https_port: int,
    upstreams: list[int],
    tls: TLSFiles,
    sticky: bool = False,
    sse_buffering: bool = False,
    http2: bool = True,
    max_streams: int | None = None,
    access_log: bool = False,
) -> str:
    """The nginx config of one run; ``http2=False`` serves the same TLS port as HTTP/1.1 only,
    ``max_streams`` sets ``http2_max_concurrent_streams``, ``access_log`` writes
    ``<prefix>/access.log`` in the :data:`ACCESS_LOG` format."""
    values = {
        "prefix": str(prefix),
        "http_port": str(http_port),
        "https_port": str(https_port),
        "cert": str(tls.cert),
        "key": str(tls.key),
        "balance": "hash $pushlab_sticky consistent;" if sticky else "least_conn;",
        "sticky_cookie": STICKY_COOKIE if sticky else "",
        "servers": "\n".join(
            f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in upstreams
        ),
        "sse_buffering": SSE_BUFFERED if sse_buffering else SSE_UNBUFFERED,
        "http2": " http2" if http2 else "",
        "http2_options": f"http2_max_concurrent_streams {max_streams};" if max_streams else "",
        "access_log": ACCESS_LOG.format(prefix=prefix) if access_log else "access_log off;",
    }
    text = TEMPLATE.read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    if "{{" in text:
        raise ValueError("unrendered placeholder in nginx template")
    return text


@dataclass
class Cluster:
    """A running (or not yet started) cluster; ``url`` is the https front door."""

    root: Path
    instances: int = 3
    broker: str = DEFAULT_BROKER
    prefix: str = ""
    sticky: bool = False
    sse_buffering: bool = False
    ticker_rate: float = 0.0  # instance 0 runs the built-in ticker when > 0
    env: dict[str, str] = field(default_factory=dict)
    nginx: str = NGINX
    ports: list[int] = field(default_factory=list)
    http_port: int = 0
    https_port: int = 0
    tls: TLSFiles | None = None
    # nginx (a foreign program: it binds its own ports) and the instances, by name.
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    apps: dict[int, ServerProcess] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>`` through nginx."""
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def instance_urls(self) -> list[str]:
        """Direct (plain HTTP) URLs of the instances, bypassing nginx."""
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def start(self) -> Cluster:
        """Certificates, instances, nginx; returns once all answer."""
        self.root = self.root.resolve()
        for sub in ("pids", "logs", "tmp", "tls"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.prefix = self.prefix or f"pushlab-cluster-{os.getpid()}-{time.time_ns()}"
        self.tls = make_tls(self.root / "tls")
        self.ports = [0] * self.instances
        try:
            for i in range(self.instances):
                self.start_instance(i)
            self._start_nginx()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_nginx(self) -> None:
        assert self.tls is not None
        self.http_port, self.https_port = free_port(), free_port()
        conf = self.root / "nginx.conf"
        conf.write_text(
            render(
                prefix=self.root,
                http_port=self.http_port,
                https_port=self.https_port,
                upstreams=self.ports,
                tls=self.tls,
                sticky=self.sticky,
                sse_buffering=self.sse_buffering,
            )
        )
        self._spawn(
            "nginx", [self.nginx, "-p", str(self.root), "-c", str(conf), "-g", "daemon off;"], {}
        )
        wait_port(self.https_port, self.procs["nginx"], "nginx")

    def start_instance(self, i: int) -> None:
        """Start (or restart) instance ``i`` on its port (any free one the first time) and wait
        until it answers /healthz."""
        env = {
            "PUSHLAB_BROKER": self.broker,
            "PUSHLAB_REDIS_PREFIX": self.prefix,
            "PUSHLAB_TICKER_RATE": str(self.ticker_rate if i == 0 else 0),
            "PUSHLAB_LOG_LEVEL": "warning",
            "PUSHLAB_TRUSTED_PROXIES": NGINX_ADDRESS,
        } | self.env
        log = self.root / "logs" / f"app-{i}.log"
        app = self.apps[i] = ServerProcess(env=env, port=self.ports[i], log_path=log)
        app.start()
        self.ports[i] = app.port
        (self.root / "pids" / f"app-{i}.pid").write_text(str(app.pid))

    def busiest(self) -> int:
        """Index of the instance holding the most live subscriptions (the fault that hurts most)."""
        counts = []
        for u in self.instance_urls:
            try:
                counts.append(httpx.get(f"{u}/healthz", timeout=2).json()["broker"]["subscribers"])
            except (httpx.HTTPError, KeyError, ValueError):
                counts.append(-1)
        return counts.index(max(counts))

    def kill_busiest(self) -> int:
        """SIGKILL :meth:`busiest`; returns the ``time.time_ns()`` of the kill (the fault time)."""
        i = self.busiest()
        killed_ns = time.time_ns()
        self.kill(i)
        return killed_ns

    def kill(self, i: int) -> None:
        """SIGKILL instance ``i``: no goodbye to its clients, as in a crash."""
        self.apps[i].kill()
        (self.root / "pids" / f"app-{i}.pid").unlink(missing_ok=True)

    def stop_instance(self, i: int, timeout: float = 15.0) -> None:
        """SIGTERM instance ``i`` (graceful: streams end, clients reconnect) and wait."""
        self.apps[i].stop_timeout_s = timeout
        self.apps[i].stop()
        (self.root / "pids" / f"app-{i}.pid").unlink(missing_ok=True)

    def restart(self, i: int) -> None:
        """Start instance ``i`` again on its port and wait until healthy."""
        self.start_instance(i)

    def rolling_restart(self, pause_s: float = 0.0) -> None:
        """Restart every instance in turn; the others keep serving meanwhile."""
        for i in range(self.instances):
            self.stop_instance(i)
            self.restart(i)
            time.sleep(pause_s)

    def stop(self) -> None:
        """Stop nginx and every instance, then delete this run's Redis keys."""
        self._signal("nginx", signal.SIGTERM, 10.0)
        for i in sorted(self.apps):
            self.stop_instance(i, 10.0)
        if self.broker.startswith("redis") and self.prefix:
            delete_prefix(self.broker, self.prefix)

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        log = open(self.root / "logs" / f"{name}.log", "ab")  # noqa: SIM115 (the child owns it)
        proc = subprocess.Popen(
            cmd,
            env=child_env(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=TEMPLATE.parent.parent.parent,
            start_new_session=True,  # Ctrl-C reaches `cluster up`, which tears down in order
        )
        log.close()
        self.procs[name] = proc
        (self.root / "pids" / f"{name}.pid").write_text(str(proc.pid))

    def _signal(self, name: str, sig: signal.Signals, timeout: float = 10.0) -> None:
        proc = self.procs.get(name)
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        with contextlib.suppress(FileNotFoundError):
            (self.root / "pids" / f"{name}.pid").unlink()


@contextlib.contextmanager
def running_cluster(root: Path | str, **options: object) -> Iterator[Cluster]:
    """Start a cluster (options as :class:`Cluster` fields), yield it, always stop it."""
    cluster = Cluster(Path(root), **options)  # type: ignore[arg-type]
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
