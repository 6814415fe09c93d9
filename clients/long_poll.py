"""Long-polling client: ``GET /long-poll`` again as soon as each answer arrives."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from clients._http import session_http
from clients.base import RawItem, Ready
from clients.short_poll import ShortPollClient, answer_items
from feed.wire.contract import CURSOR_HEADER, PATHS


class LongPollClient(ShortPollClient):
    """The server holds each request up to ``wait_s``; a 204 means "nothing yet"."""

    transport = "long-poll"

    def __init__(self, url: str, topic: str, *, wait_s: float = 20.0, **kwargs: Any) -> None:
        super().__init__(url, topic, interval_s=0.0, **kwargs)
        self.wait_s = wait_s

    async def _session(self) -> AsyncGenerator[RawItem, None]:
        async with session_http(self, self.wait_s + 10.0) as http:
            while True:
                params = self.params() | {"timeout": str(self.wait_s)}
                response = await self.fetch(http, PATHS["long-poll"], params)
                if response.status_code == 204:
                    self.counters.empty_responses += 1
                    yield Ready(int(response.headers[CURSOR_HEADER]))
                    continue
                items, _ = answer_items(response.content, self.counters)
                for item in items:
                    yield item
