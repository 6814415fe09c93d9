"""The one way to start the lab's server: in a thread, or as a child process.

:class:`ServerThread` serves ``create_app(settings)`` under uvicorn with the config ``pushlab
serve`` uses (``servers.runner.build_config``: the WebSocket class, the guarded HTTP protocol, the
lifespan, the draining shutdown), or under hypercorn (:mod:`servers.http2`: HTTP/2, h2c or over
TLS). ``settings.tls_cert``/``tls_key`` make either speak TLS (``url`` is then ``https://``);
``settings.http2`` picks hypercorn in a thread and in a process alike.
:class:`ServerProcess` runs ``python -m servers --fd N`` on a socket this process bound: port 0
means any free port, with no window in which another program can take it (``workers`` > 1:
``--workers N`` on that port, whose workers :func:`spawn_worker` starts). Both wait for a
condition (uvicorn's ``started``; ``/healthz`` answering 200), never for a fixed time.

Which ``PUSHLAB_*`` variables a child sees is decided in one place, :func:`child_env`: this
process's environment minus ``PUSHLAB_*`` names that are not settings (the test suite's
``PUSHLAB_TEST_MS``, the runs' ``PUSHLAB_RESULTS``: the child would refuse them as typos), plus
the caller's settings. :func:`settings_env` turns a :class:`Settings` into those variables.

:func:`free_port` is only for foreign programs that must bind a port themselves (nginx, Node,
Granian, Redis, a Locust master): the port can be taken between the check and their bind.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import TracebackType
from typing import Any

from feed.broker import Broker
from feed.settings import ENV_PREFIX, Settings

# Settings every child gets from its socket or its flags, never from the environment.
_NOT_INHERITED = ("host", "port")
SETTING_NAMES = frozenset(f"{ENV_PREFIX}{f.name.upper()}" for f in fields(Settings))


class ServerExited(RuntimeError):
    """The server process ended before it was ready, or the thread died; carries its log."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(f"{message}\n--- server log (last 4,000 chars) ---\n{log[-4000:]}")
        self.log = log


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now; only for programs that must bind it themselves."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def bind(host: str = "127.0.0.1", port: int = 0, *, reuse_port: bool = False) -> socket.socket:
    """A bound, not yet listening TCP socket (port 0: the kernel picks a free one).

    SO_REUSEADDR so that a restart can bind the same port while the old connections sit in
    TIME_WAIT; the server listens on it (uvicorn through asyncio's ``create_server``).
    ``reuse_port``: SO_REUSEPORT too, so the workers of ``--workers N`` can bind the port as well.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``PUSHLAB_*`` variables that make a child build ``settings`` (host and port aside:
    those come from the socket). Only fields that differ from the defaults, so a record of them
    says what was changed."""
    default = Settings()
    return {
        f"{ENV_PREFIX}{f.name.upper()}": _env_value(getattr(settings, f.name))
        for f in fields(Settings)
        if f.name not in _NOT_INHERITED and getattr(settings, f.name) != getattr(default, f.name)
    }


def child_env(
    overrides: Mapping[str, str] | None = None,
    *,
    settings: Settings | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of every child the lab starts (servers, load generators, instances).

    From ``environ`` (default: this process's) every variable passes except ``PUSHLAB_*`` names
    that are not settings. Given ``settings``, they are the child's whole configuration: the
    inherited ``PUSHLAB_*`` settings are replaced by :func:`settings_env` of them (an inherited
    ``PUSHLAB_WS_COMPRESSION=1`` must not turn on what ``settings`` left at its default). Then
    ``overrides``; one with a ``PUSHLAB_`` name that is not a setting is refused here, where the
    typo is, rather than by the child after it started.
    """
    base = os.environ if environ is None else environ
    extra = dict(overrides or {})
    unknown = sorted(k for k in extra if k.startswith(ENV_PREFIX) and k not in SETTING_NAMES)
    if unknown:
        raise ValueError(f"unknown setting {', '.join(unknown)}")
    if settings is None:
        kept = {k: v for k, v in base.items() if not k.startswith(ENV_PREFIX) or k in SETTING_NAMES}
    else:
        kept = {k: v for k, v in base.items() if not k.startswith(ENV_PREFIX)}
        kept |= settings_env(settings)
    return kept | extra


def healthy(url: str, timeout: float = 1.0) -> bool:
    """``GET /healthz`` answers 200 (stdlib client: no proxy variables, no pool).

    Over ``https://`` the certificate is not checked: this only asks whether the process that
    was handed the socket answers yet (the clients verify, against the CA the caller holds).
    """
    tls = url.startswith("https://")
    host, _, port = url.removeprefix("https://").removeprefix("http://").rpartition(":")
    conn: http.client.HTTPConnection
    if tls:
        probe = ssl.create_default_context()
        probe.check_hostname, probe.verify_mode = False, ssl.CERT_NONE
        conn = http.client.HTTPSConnection(
            host.strip("[]"), int(port), timeout=timeout, context=probe
        )
    else:
        conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _url(host: str, port: int, tls: bool = False) -> str:
    scheme = "https" if tls else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


@dataclass
class ServerThread:
    """``create_app(settings)`` on ``settings.host``, in a daemon thread of this process.

    ``port`` 0 takes a free one (kept for :meth:`restart`). ``server="hypercorn"`` (or
    ``settings.http2``) serves the same app over HTTP/1.1 and HTTP/2 (h2c by prior knowledge, or
    ALPN ``h2`` over TLS) with RFC 8441 WebSockets.
    """

    settings: Settings
    broker: Broker | None = None
    port: int = 0
    server: str = "uvicorn"
    # On top of build_config's options, e.g. {"ws_max_size": 128 * 1024}.
    uvicorn_options: dict[str, Any] = field(default_factory=dict)
    # Called with the app before it serves (e.g. to add a middleware).
    customize: Callable[[Any], None] | None = None
    start_timeout_s: float = 10.0
    stop_timeout_s: float = 10.0
    # The app being served (uvicorn may wrap it, e.g. in its proxy-headers middleware).
    app: Any = None
    # The running uvicorn server (its server_state: live connections); None under hypercorn.
    uvicorn: Any = field(default=None, repr=False)
    _stop: Callable[[], None] | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _error: BaseException | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return _url(self.settings.host, self.port, self.settings.tls)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    def start(self) -> ServerThread:
        if self.server not in ("uvicorn", "hypercorn"):
            raise ValueError(f"server must be uvicorn or hypercorn, not {self.server!r}")
        if self.settings.http2:
            self.server = "hypercorn"
        from servers.app import create_app

        sock = bind(self.settings.host, self.port)
        self.port = int(sock.getsockname()[1])
        app = self.app = create_app(self.settings, self.broker)
        if self.customize is not None:
            self.customize(app)
        run = self._uvicorn_run(app, sock) if self.server == "uvicorn" else self._hyper_run(sock)
        self._error = None
        self._thread = threading.Thread(target=self._guard(run, sock), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not self._ready():
            if not self._thread.is_alive():
                raise ServerExited(f"the {self.server} thread ended: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.server} did not start in {self.start_timeout_s} s")
            time.sleep(0.005)
        return self

    def _guard(self, run: Callable[[], None], sock: socket.socket) -> Callable[[], None]:
        def target() -> None:
            try:
                run()
            except BaseException as exc:  # reported by start(); a thread has nobody to raise to
                self._error = exc
            finally:
                sock.close()

        return target

    def _uvicorn_run(self, app: Any, sock: socket.socket) -> Callable[[], None]:
        from servers.runner import PushlabServer, build_config

        options: dict[str, Any] = {
            "host": self.settings.host,
            "port": self.port,
            "log_level": "warning",
            # Leave logging alone: records propagate to the host's root logger (pytest's caplog);
            # uvicorn's dictConfig would replace its handlers.
            "log_config": None,
        }
        config = build_config(self.settings, app, **(options | self.uvicorn_options))
        server = self.uvicorn = PushlabServer(config, app)

        def stop() -> None:
            server.should_exit = True

        self._stop = stop
        return lambda: server.run(sockets=[sock])

    def _hyper_run(self, sock: socket.socket) -> Callable[[], None]:
        import asyncio

        from servers.http2 import run_loop, serve_http2

        sock.listen(128)
        started = threading.Event()
        box: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

        async def main() -> None:
            stop = asyncio.Event()
            box.append((asyncio.get_running_loop(), stop))
            started.set()
            await serve_http2(self.app, self.settings, sock, stop)

        def stop() -> None:
            if started.wait(self.stop_timeout_s) and box:
                loop, event = box[0]
                with contextlib.suppress(RuntimeError):  # the loop already ended
                    loop.call_soon_threadsafe(event.set)

        self._stop = stop
        return lambda: run_loop(main())

    def _ready(self) -> bool:
        if self.server == "uvicorn":
            return bool(self.uvicorn is not None and self.uvicorn.started)
        return healthy(self.url, timeout=0.5)

    def stop(self) -> None:
        """Ask the server to shut down (uvicorn: the draining shutdown) and join the thread."""
        if self._thread is not None and self._stop is not None:
            self._stop()
            self._thread.join(self.stop_timeout_s)
            if self._thread.is_alive():
                raise RuntimeError(f"{self.server} did not stop in {self.stop_timeout_s} s")
        self._thread = self._stop = self.uvicorn = None

    def restart(self) -> None:
        """Stop and start again on the same port (same broker if one was injected)."""
        self.stop()
        self.start()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def spawn_worker(sock: socket.socket, settings: Settings) -> subprocess.Popen[bytes]:
    """One worker of ``pushlab serve --workers N`` (:mod:`servers.workers`): ``python -m servers
    --fd N`` on ``sock`` (listening, SO_REUSEPORT), configured by exactly ``settings``.

    It stays in the caller's process group and writes to the caller's stdout and stderr: the
    workers are one server, stopped and logged as one.
    """
    fd = sock.fileno()
    cmd = [sys.executable, "-m", "servers", "--fd", str(fd)]
    return subprocess.Popen(cmd, env=child_env(settings=settings), pass_fds=(fd,))


@dataclass
class ServerProcess:
    """``python -m servers --fd N`` in a child process: real signals, its own CPU and memory.

    The child's environment is :func:`child_env`: this process's settings with the ticker off,
    or exactly ``settings`` when given; then ``env``. ``args`` are flags (they win over both).
    stdout and stderr go to ``log_path`` (a temporary file unless given), read by :meth:`log`.
    ``workers`` > 1 runs ``--workers N`` (:mod:`servers.workers`; it needs a shared broker) on
    a socket bound with SO_REUSEPORT; it is ready when ``/healthz`` answers through the port.
    """

    settings: Settings | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    args: Sequence[str] = ()
    host: str = "127.0.0.1"
    port: int = 0
    log_path: Path | str | None = None
    # Runs the server under another command, e.g. ["prlimit", "--nofile=128"].
    prefix: Sequence[str] = ()
    start_timeout_s: float = 30.0
    stop_timeout_s: float = 10.0
    workers: int = 1
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    # The command of the last start (runs record it in their metadata).
    argv: list[str] = field(default_factory=list, init=False)

    @property
    def url(self) -> str:
        """``http://`` or, when the child serves TLS (``PUSHLAB_TLS_CERT`` or ``--tls-cert``),
        ``https://``."""
        tls = bool(self.child_env().get(f"{ENV_PREFIX}TLS_CERT")) or "--tls-cert" in self.args
        return _url(self.host, self.port, tls)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the server process is not running")
        return self.proc.pid

    def child_env(self) -> dict[str, str]:
        """What the child runs with: :func:`child_env`, the ticker off unless ``settings`` or
        ``env`` say otherwise."""
        if self.settings is not None:
            return child_env(self.env, settings=self.settings)
        return child_env({f"{ENV_PREFIX}TICKER_RATE": "0"} | dict(self.env))

    def start(self) -> ServerProcess:
        """Spawn the child on a socket bound here and wait until ``/healthz`` answers 200."""
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="pushlab-server-", suffix=".log")
            os.close(fd)
            self.log_path = name
        env = self.child_env()
        sock = bind(self.host, self.port, reuse_port=self.workers > 1)
        self.port = int(sock.getsockname()[1])
        fd = sock.fileno()
        cmd = [*self.prefix, sys.executable, "-m", "servers", "--fd", str(fd), *self.args]
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        self.argv = cmd
        # Ctrl-C is held back until self.proc is set: a KeyboardInterrupt raised inside Popen
        # (after the fork) would leave a running child that nobody knows to stop.
        pending: list[int] = []
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, lambda *_: pending.append(1)) if main else None
        try:
            with open(self.log_path, "ab") as log:
                # Its own session: a Ctrl-C meant for this process does not reach it directly,
                # and stop() signals the group (anything it started goes too).
                self.proc = subprocess.Popen(
                    cmd, env=env, stdout=log, stderr=log, pass_fds=(fd,), start_new_session=True
                )
        finally:
            # The child has its copy; keeping ours would hold the port (and queue connections
            # nobody accepts) after the child is gone.
            sock.close()
            if main:
                signal.signal(signal.SIGINT, previous)
        if pending:
            self.stop()
            raise KeyboardInterrupt
        deadline = time.monotonic() + self.start_timeout_s
        while not healthy(self.url):
            if self.proc.poll() is not None:
                code, self.proc = self.proc.returncode, None
                raise ServerExited(f"server exited with {code} before it was ready", self.log())
            if time.monotonic() > deadline:
                self.stop()
                raise ServerExited(f"/healthz not ready after {self.start_timeout_s} s", self.log())
            time.sleep(0.02)
        return self

    def log(self) -> str:
        """Everything the child wrote so far (stdout and stderr)."""
        if self.log_path is None or not os.path.exists(self.log_path):
            return ""
        return Path(self.log_path).read_text(encoding="utf-8", errors="replace")

    def terminate(self) -> None:
        """SIGTERM the child (its drain starts); do not wait."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self) -> int | None:
        """SIGTERM, wait up to ``stop_timeout_s``, then SIGKILL; returns the exit code."""
        if self.proc is None:
            return None
        proc = self.proc
        self.terminate()
        try:
            code = proc.wait(self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait(5)
        self.proc = None
        return code

    def kill(self) -> int | None:
        """SIGKILL, as in a crash (no drain, no goodbye); returns the exit code."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(5)

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
