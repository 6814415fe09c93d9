"""The abstract Locust user of every feed locustfile: one subscriber per user, one sync client.

Each user holds one subscription (a WebSocket, an SSE stream, or a polling loop) and fires
``events.request`` once per DELIVERED EVENT, not per HTTP request: ``request_type`` is the
transport (``ws``, ``sse``, ``poll``, ``long-poll``), ``name`` the topic, ``response_time`` the
end-to-end latency in ms (``time.time_ns()`` on arrival minus the event's ``ts_ns``, both this
host's wall clock) and ``response_length`` the event's JSON bytes. Exceptions, close codes and
server-ended streams are fired as failures (``response_time=None``, so they never pollute the
latency figures). Like ``clients/``, a user resumes after its last seq on reconnect (``since`` /
``Last-Event-ID``), drops and counts duplicates, and counts announced gaps and silent seq jumps.

Options (each also a flag and a field of the web UI's start form; workers get the master's):

====================================  =================================  ===================
env var                               flag                               default
====================================  =================================  ===================
``LOCUST_FEED_TOPIC``                 ``--feed-topic``                   ``ticks``
``LOCUST_FEED_SINCE``                 ``--feed-since`` (empty: from now)  empty
``LOCUST_FEED_POLL_INTERVAL_S``       ``--feed-poll-interval-s``         ``1.0``
``LOCUST_FEED_LONG_POLL_TIMEOUT_S``   ``--feed-long-poll-timeout-s``     ``20``
``LOCUST_FEED_READ_TIMEOUT_S``        ``--feed-read-timeout-s``          ``45``
``LOCUST_FEED_SUMMARY``               ``--feed-summary`` (JSON path)     none
====================================  =================================  ===================

Not ``PUSHLAB_*``: ``feed.settings`` rejects unknown ``PUSHLAB_`` variables, and a server started
from the same shell must not trip over the load driver's options.

Delivery figures finer than Locust's (which rounds to whole ms below 100 ms) are kept in a
:class:`~experiments.locustfiles._tally.Tally` per process and merged across workers by
:mod:`experiments.locustfiles._reporting`, which writes the summary to ``--feed-summary``.
"""

from __future__ import annotations

from locust import User, constant, events, task
from locust.exception import StopUser

import contextlib
import os
import random
import socket
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import gevent
import gevent.events

from experiments.locustfiles._reporting import TALLY, USERS

FATAL_CLOSE_CODES = frozenset({1003, 1007, 1008, 1009})
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# A gevent socket read yields only when it would block. Under overload a user's buffer never
# runs dry, so without an explicit yield one user starves the others, the --run-time timer and
# a worker's stats reports (measured: an 8 s run lasting 34 s, one worker's data never sent).
YIELD_EVERY = 64


class FeedError(Exception):
    """A connection ended in a way worth a failure row (close code, ``end`` event, HTTP status)."""


class FatalFeedError(FeedError):
    """Retrying would fail the same way (4xx, close 1008/1009): the user stops."""


def http_status_error(status: int, body: bytes) -> FeedError:
    """The error for a non-2xx answer: fatal for 4xx other than 408/425/429."""
    text = f"HTTP {status}: {body[:300].decode(errors='replace')}"
    if 400 <= status < 500 and status not in RETRYABLE_STATUS:
        return FatalFeedError(text)
    return FeedError(text)


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    def opt(flag: str, env: str, default: str, help_: str) -> None:
        parser.add_argument(flag, env_var=env, default=default, help=help_, include_in_web_ui=True)

    opt("--feed-topic", "LOCUST_FEED_TOPIC", "ticks", "topic to subscribe to")
    opt("--feed-since", "LOCUST_FEED_SINCE", "", "first cursor (empty: from now on)")
    opt("--feed-poll-interval-s", "LOCUST_FEED_POLL_INTERVAL_S", "1.0", "short-poll interval")
    opt("--feed-long-poll-timeout-s", "LOCUST_FEED_LONG_POLL_TIMEOUT_S", "20", "long-poll wait")
    opt("--feed-read-timeout-s", "LOCUST_FEED_READ_TIMEOUT_S", "45", "silence = dead socket")
    opt("--feed-summary", "LOCUST_FEED_SUMMARY", "", "write the delivery summary JSON here")
    opt("--feed-monitor-hub-ms", "LOCUST_FEED_MONITOR_HUB_MS", "0", "count hub blocks > N ms")


def _on_gevent_event(event: object) -> None:
    if isinstance(event, gevent.events.EventLoopBlocked):
        TALLY.hub_blocked += 1  # runs in gevent's monitor thread; an int add under the GIL


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    # The proof of cooperativeness: gevent's own monitor thread reports every time one greenlet
    # (a user stuck in a blocking, unpatched read) keeps the hub from running for N ms.
    ms = float(getattr(environment.parsed_options, "feed_monitor_hub_ms", 0) or 0)
    if ms > 0:
        gevent.config.monitor_thread = True
        gevent.config.max_blocking_time = ms / 1000
        gevent.events.subscribers.append(_on_gevent_event)
        gevent.get_hub().start_periodic_monitoring_thread()


def backoff(base_s: float = 0.1, cap_s: float = 5.0) -> Iterator[float]:
    """Exponential backoff with full jitter, like ``clients.retry.RetryPolicy``."""
    n = 0
    while True:
        yield random.uniform(0.0, min(cap_s, base_s * 2**n))
        n += 1


class FeedUser(User):
    """One subscriber. Subclasses set ``transport`` and implement :meth:`session`.

    ``session`` yields ``(seq, ts_ns, nbytes, recv_ns)`` tuples for events, ``("ready",
    cursor)`` and ``("gap", resume_after)`` for control items, and returns or raises when the
    connection ends. Everything else (cursor, dedupe, reconnect, reporting) lives here.
    """

    abstract = True
    transport: ClassVar[str] = "?"
    wait_time = constant(0)

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        opts = environment.parsed_options
        self.topic: str = getattr(opts, "feed_topic", "ticks") or "ticks"
        since = getattr(opts, "feed_since", "") or ""
        self.last_seq: int | None = int(since) if since.strip() else None
        self.read_timeout_s = float(getattr(opts, "feed_read_timeout_s", 45) or 45)
        self.sock: socket.socket | None = None
        self.retry_base_s = 0.1  # SSE: the server's ``retry:`` replaces it, as in EventSource
        self.stopping = False
        self.delivered = 0
        self.key = f"{os.getpid()}:{id(self)}"
        USERS.add(self)

    def session(self) -> Iterator[tuple[Any, ...]]:
        """Items of one connection (polling: one run of requests until an error)."""
        raise NotImplementedError

    def stop_feed(self) -> None:
        """Stop following and cut the current socket (wakes a blocked read)."""
        self.stopping = True
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)

    def on_stop(self) -> None:
        self.stop_feed()

    @task
    def follow(self) -> None:
        """Subscribe, deliver, and reconnect with backoff until the test stops."""
        delays = backoff(self.retry_base_s)
        n = 0
        while not self.stopping:
            opened = False
            try:
                for item in self.session():
                    n += 1
                    if n % YIELD_EVERY == 0:
                        gevent.sleep(0)
                    if not opened:
                        opened = True
                        TALLY.open_sessions += 1
                        TALLY.peak_open = max(TALLY.peak_open, TALLY.open_sessions)
                    if self.deliver(item):
                        delays = backoff(self.retry_base_s)  # a delivering connection resets it
            except FatalFeedError as exc:
                self.fail(exc)
                raise StopUser() from exc
            except Exception as exc:
                if self.stopping:
                    break
                self.fail(exc)
            finally:
                TALLY.open_sessions -= opened
            if self.stopping:
                break
            TALLY.reconnects += 1
            time.sleep(next(delays))  # gevent-patched: yields to the other users
        raise StopUser()

    def deliver(self, item: tuple[Any, ...]) -> bool:
        """Account for one item; True when it was a newly delivered event."""
        kind = item[0]
        if kind == "ready":
            if self.last_seq is None:
                self.last_seq = item[1]
            return False
        if kind == "gap":
            self.last_seq = item[1]
            TALLY.gaps += 1
            return False
        seq, ts_ns, nbytes, recv_ns = item
        last = self.last_seq
        if last is not None:
            if seq <= last:
                TALLY.duplicates += 1
                return False
            if seq != last + 1:
                TALLY.silent_gaps += 1
        self.last_seq = seq
        latency_ms = (recv_ns - ts_ns) / 1e6
        TALLY.event(latency_ms, nbytes, recv_ns)
        if not self.delivered:
            TALLY.users_delivering.add(self.key)
        self.delivered += 1
        self.environment.events.request.fire(
            request_type=self.transport,
            name=self.topic,
            response_time=latency_ms,
            response_length=nbytes,
            exception=None,
            context={},
        )
        return True

    def fail(self, exc: BaseException) -> None:
        """A failure row: transport error, close code, or a stream the server ended."""
        TALLY.failures += 1
        self.environment.events.request.fire(
            request_type=self.transport,
            name=self.topic,
            response_time=None,
            response_length=0,
            exception=exc,
            context={},
        )
