"""The poll-answer reader shared by the short- and long-polling locustfiles."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import orjson

from experiments.locustfiles._httpclient import last_socket
from experiments.locustfiles.base import TALLY, FeedUser, http_status_error

# feed.wire.contract.CURSOR_HEADER, spelled again on purpose: importing feed would bring the core's
# asyncio broker into the gevent process, which the locustfiles keep out (test_locustfiles checks
# the two agree).
CURSOR_HEADER = "Pushlab-Cursor"


class PollingUser(FeedUser):
    """Shared request/answer handling; subclasses choose the path and the pacing."""

    abstract = True

    def fetch(self, client: Any, path: str, extra: dict[str, str]) -> tuple[int, bytes, Any]:
        """One GET with the current cursor: ``(status, body, response)``."""
        query = {"topic": self.topic}
        if self.last_seq is not None:
            query["since"] = str(self.last_seq)
        response = client.get(f"{path}?{urlencode(query | extra)}")
        self.sock = last_socket(response)
        body = response.read()
        TALLY.requests += 1
        status = int(response.status_code)
        if status not in (200, 204):
            raise http_status_error(status, body)
        return status, body, response

    def answer_items(self, body: bytes) -> tuple[list[tuple[Any, ...]], bool]:
        """Items of one batch answer (events with their JSON sizes), and its ``more`` flag."""
        recv_ns = time.time_ns()
        answer = orjson.loads(body)
        items: list[tuple[Any, ...]] = []
        if answer.get("gap"):
            items.append(("gap", int(answer["gap"]["resume_after"])))
        events = answer["events"]
        if not events:
            TALLY.empty_responses += 1
        for e in events:
            items.append((e["seq"], e["ts_ns"], len(orjson.dumps(e)), recv_ns))
        items.append(("ready", int(answer["cursor"])))
        return items, bool(answer.get("more"))
