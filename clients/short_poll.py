"""Short-polling client: ``GET /poll`` every ``interval_s``, at once again while ``more`` is set."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import httpx

from clients._http import SocketTracker, parse_events, raise_for_status, session_http
from clients.base import Counters, Cuttable, FeedClient, RawItem, Ready
from feed.codec import gap_from_dict, loads
from feed.wire.contract import PATHS


def answer_items(body: bytes, counters: Counters) -> tuple[list[RawItem], bool]:
    """The items of one poll answer, and whether more are already waiting."""
    answer = loads(body)
    items: list[RawItem] = []
    if answer.get("gap"):
        items.append(gap_from_dict(answer["gap"]))
    events = parse_events(answer["events"])
    if not events:
        counters.empty_responses += 1
    items.extend(events)
    items.append(Ready(int(answer["cursor"])))
    return items, bool(answer.get("more"))


class ShortPollClient(FeedClient):
    """Polls on a fixed interval; each answer carries the next cursor."""

    transport = "poll"

    def __init__(self, url: str, topic: str, *, interval_s: float = 1.0, **kwargs: Any) -> None:
        super().__init__(url, topic, **kwargs)
        self.interval_s = interval_s
        self._tracker = SocketTracker(self.counters)

    def _socket(self) -> Cuttable | None:
        return self._tracker.sock

    def params(self) -> dict[str, str]:
        """Query of the next request: topic and, once known, the cursor."""
        params = {"topic": self.topic}
        if self.last_seq is not None:
            params["since"] = str(self.last_seq)
        return params

    async def fetch(
        self, http: httpx.AsyncClient, path: str, params: dict[str, str]
    ) -> httpx.Response:
        """One request, its socket exposed to :meth:`drop` while it is in flight."""
        async with http.stream(
            "GET",
            self.url + path,
            params=params,
            headers=self.auth_headers(),
            extensions={"trace": self._tracker},
        ) as response:
            await raise_for_status(response)
            await response.aread()
        self.counters.requests += 1
        return response

    async def _session(self) -> AsyncGenerator[RawItem, None]:
        async with session_http(self, 30.0) as http:
            while True:
                response = await self.fetch(http, PATHS["poll"], self.params())
                items, more = answer_items(response.content, self.counters)
                for item in items:
                    yield item
                if not more:
                    await asyncio.sleep(self.interval_s)
