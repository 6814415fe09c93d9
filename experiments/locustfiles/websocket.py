"""WebSocket subscribers: ``locust -f experiments/locustfiles/websocket.py --host http://...``.

Each user opens ``/ws?topic=T[&since=N]`` with websocket-client (pure Python on the socket
module, so gevent's patched sockets make it cooperative) and fires one Locust request per event
frame. Resume: ``since`` = the last delivered seq. Close codes 1003/1007/1008/1009 and 4xx
upgrade refusals stop the user; any other close or error is a failure row, then a reconnect.

Options (see ``base.py``): ``LOCUST_FEED_TOPIC``, ``LOCUST_FEED_SINCE``,
``LOCUST_FEED_READ_TIMEOUT_S``, ``LOCUST_FEED_SUMMARY``.
"""

from __future__ import annotations

import importlib
import os
import struct
import sys
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import orjson

from experiments.locustfiles.base import (
    FATAL_CLOSE_CODES,
    TALLY,
    FatalFeedError,
    FeedError,
    FeedUser,
    http_status_error,
)

HERE = os.path.dirname(os.path.abspath(__file__))


def load_websocket_client() -> ModuleType:
    """The websocket-client package, even while Locust runs a locustfile named ``websocket.py``.

    Locust imports ``-f .../websocket.py`` as module ``websocket`` with its folder first on
    ``sys.path``: a plain ``import websocket`` would then import the locustfile itself.
    """
    loaded = sys.modules.get("websocket")
    if loaded is not None and hasattr(loaded, "create_connection"):
        return loaded
    shadow = sys.modules.pop("websocket", None)
    saved_path = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]
    try:
        return importlib.import_module("websocket")
    finally:
        sys.path[:] = saved_path
        if shadow is not None:
            sys.modules["websocket"] = shadow


ws_client = load_websocket_client()
OPCODE_TEXT = ws_client.ABNF.OPCODE_TEXT
OPCODE_CLOSE = ws_client.ABNF.OPCODE_CLOSE


class WebSocketUser(FeedUser):
    """One ``/ws`` subscription per user."""

    transport = "ws"

    def ws_url(self) -> str:
        query = {"topic": self.topic}
        if self.last_seq is not None:
            query["since"] = str(self.last_seq)
        return "ws" + self.host.rstrip("/").removeprefix("http") + "/ws?" + urlencode(query)

    def session(self) -> Iterator[tuple[Any, ...]]:
        try:
            ws = ws_client.create_connection(
                self.ws_url(),
                timeout=self.read_timeout_s,
                skip_utf8_validation=True,  # the pure-Python UTF-8 check would dominate the CPU
                enable_multithread=False,
            )
        except ws_client.WebSocketBadStatusException as exc:
            raise http_status_error(exc.status_code, exc.resp_body or b"") from exc
        self.sock = ws.sock
        TALLY.connections += 1
        TALLY.requests += 1
        try:
            while not self.stopping:
                opcode, data = ws.recv_data()
                if opcode == OPCODE_TEXT:
                    recv_ns = time.time_ns()
                    obj = orjson.loads(data)
                    kind = obj.get("type")
                    if kind is None:
                        yield obj["seq"], obj["ts_ns"], len(data), recv_ns
                    elif kind == "ready":
                        yield "ready", int(obj["cursor"])
                    elif kind == "gap":
                        yield "gap", int(obj["resume_after"])
                    elif kind == "ping":
                        # The server's heartbeat (docs/protocol.md): unanswered, it closes 1011.
                        ws.send(orjson.dumps({"type": "pong", "id": obj.get("id")}).decode())
                elif opcode == OPCODE_CLOSE:
                    code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                    reason = data[2:].decode(errors="replace")
                    error = FatalFeedError if code in FATAL_CLOSE_CODES else FeedError
                    raise error(f"closed {code} {reason}".strip())
        finally:
            self.sock = None
            ws.close(timeout=0)
