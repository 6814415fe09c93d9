"""Delivery counts across Locust processes: per-process tallies, worker deltas, the final summary.

Each process counts into :data:`TALLY`. Workers send deltas with every stats report
(``report_to_master``) and, when the test stops, their final counts on request (a custom
message: Locust itself only waits 0.5 s for a worker's last report). The master, or the only
process, merges everything into :data:`MERGED` and writes the summary JSON (``--feed-summary``)
when it quits.
"""

from __future__ import annotations

from locust import events
from locust.runners import MasterRunner, WorkerRunner

import json
import sys
import time
import weakref
from typing import Any

import gevent

from experiments.locustfiles._tally import Tally, summary

TALLY = Tally()  # this process's counters (one Locust process = one tally)
MERGED = Tally()  # on the master (or the only process): the sum of every report
_WORKERS: dict[str, int] = {}  # worker id -> its peak of open sessions
_FINAL: set[str] = set()  # workers whose final counts arrived (this test)
FINAL_WAIT_S = 5.0
USERS: weakref.WeakSet[Any] = weakref.WeakSet()  # live FeedUsers of this process


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    TALLY.reset()
    MERGED.reset()
    _WORKERS.clear()
    _FINAL.clear()


@events.init.add_listener
def _register_messages(environment: Any, **_: Any) -> None:
    # Locust's master gives workers 0.5 s to send their last stats after "quit"; a busy worker
    # misses that (measured: half the users of a 3 s run lost). So the master asks for the final
    # counts itself when the test stops, and waits for every worker's answer.
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message("pushlab_flush", _on_flush)
    elif isinstance(runner, MasterRunner):
        runner.register_message("pushlab_final", _on_final)


def _on_flush(environment: Any, msg: Any, **_: Any) -> None:
    _stop_users()
    environment.runner.send_message("pushlab_final", TALLY.take())


def _on_final(environment: Any, msg: Any, **_: Any) -> None:
    _merge_worker(msg.node_id, msg.data)
    _FINAL.add(msg.node_id)


def _stop_users() -> None:
    for user in list(USERS):
        user.stop_feed()


@events.test_stopping.add_listener
def _on_test_stopping(environment: Any, **_: Any) -> None:
    # Users block in recv; cut their sockets so they stop at once instead of waiting out
    # --stop-timeout.
    _stop_users()
    runner = environment.runner
    if isinstance(runner, MasterRunner) and runner.worker_count:
        expected = runner.worker_count
        runner.send_message("pushlab_flush")
        deadline = time.monotonic() + FINAL_WAIT_S
        while len(_FINAL) < expected and time.monotonic() < deadline:
            gevent.sleep(0.05)


@events.report_to_master.add_listener
def _on_report(client_id: str, data: dict[str, Any]) -> None:
    data["pushlab_feed"] = TALLY.take()


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any]) -> None:
    if "pushlab_feed" in data:
        _merge_worker(client_id, data["pushlab_feed"])


def _merge_worker(client_id: str, snap: dict[str, Any]) -> None:
    _WORKERS[client_id] = max(_WORKERS.get(client_id, 0), int(snap.get("peak_open", 0)))
    MERGED.merge(snap)


@events.quitting.add_listener
def _on_quitting(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    MERGED.merge(TALLY.take())  # local runner: this process's own counts
    result = summary(MERGED)
    result["workers"] = len(_WORKERS)  # 0: a single local process
    if _WORKERS:  # workers run side by side: their peaks add up
        result["peak_open_sessions"] = sum(_WORKERS.values())
    path = getattr(environment.parsed_options, "feed_summary", "") or ""
    line = {k: v for k, v in result.items() if k != "hist"}
    print(f"pushlab-feed: {json.dumps(line)}", file=sys.stderr)
    if path:
        with open(path, "w") as f:
            json.dump(result, f)
