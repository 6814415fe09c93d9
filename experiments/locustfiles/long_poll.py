"""Long-polling subscribers: ``locust -f experiments/locustfiles/long_poll.py --host ...``.

Each user sends ``GET /long-poll?topic=T&since=N&timeout=S`` again as soon as each answer
arrives (one keep-alive geventhttpclient connection) and fires one Locust request per event; a
``204`` (nothing within S seconds) carries the next cursor in ``Pushlab-Cursor`` and is counted
as an empty response. The socket read timeout is S + ``LOCUST_FEED_READ_TIMEOUT_S``.

Options (see ``base.py``): ``LOCUST_FEED_TOPIC``, ``LOCUST_FEED_SINCE``,
``LOCUST_FEED_LONG_POLL_TIMEOUT_S`` (default 20; servers cap it at 30),
``LOCUST_FEED_READ_TIMEOUT_S``, ``LOCUST_FEED_SUMMARY``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from experiments.locustfiles._httpclient import open_client
from experiments.locustfiles._polling import CURSOR_HEADER, PollingUser
from experiments.locustfiles.base import TALLY


class LongPollUser(PollingUser):
    """Holds one ``/long-poll`` request open at a time."""

    transport = "long-poll"

    def session(self) -> Iterator[tuple[Any, ...]]:
        opts = self.environment.parsed_options
        wait_s = float(getattr(opts, "feed_long_poll_timeout_s", 20) or 20)
        client = open_client(self.host, wait_s + self.read_timeout_s)
        TALLY.connections += 1
        try:
            while not self.stopping:
                status, body, response = self.fetch(client, "/long-poll", {"timeout": str(wait_s)})
                if status == 204:
                    TALLY.empty_responses += 1
                    yield "ready", int(response[CURSOR_HEADER])
                    continue
                items, _ = self.answer_items(body)
                yield from items
        finally:
            self.sock = None
            client.close()
