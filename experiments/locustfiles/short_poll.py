"""Short-polling subscribers: ``locust -f experiments/locustfiles/short_poll.py --host ...``.

Each user sends ``GET /poll?topic=T&since=N`` every ``LOCUST_FEED_POLL_INTERVAL_S`` seconds
(at once again while the answer says ``more``) over one keep-alive geventhttpclient connection,
and fires one Locust request per event in each answer; all events of one answer share its arrival
time. The cursor of each answer is the next ``since``. Empty answers are counted, not fired.

Options (see ``base.py``): ``LOCUST_FEED_TOPIC``, ``LOCUST_FEED_SINCE``,
``LOCUST_FEED_POLL_INTERVAL_S`` (default 1.0), ``LOCUST_FEED_READ_TIMEOUT_S``,
``LOCUST_FEED_SUMMARY``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from experiments.locustfiles._httpclient import open_client
from experiments.locustfiles._polling import PollingUser
from experiments.locustfiles.base import TALLY


class ShortPollUser(PollingUser):
    """Polls ``/poll`` on a fixed interval."""

    transport = "poll"

    def session(self) -> Iterator[tuple[Any, ...]]:
        opts = self.environment.parsed_options
        interval = float(getattr(opts, "feed_poll_interval_s", 1.0) or 1.0)
        client = open_client(self.host, self.read_timeout_s)
        TALLY.connections += 1
        try:
            while not self.stopping:
                _, body, _ = self.fetch(client, "/poll", {})
                items, more = self.answer_items(body)
                yield from items
                if not more:
                    time.sleep(interval)  # gevent-patched
        finally:
            self.sock = None
            client.close()
