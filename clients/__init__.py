"""One client per transport behind one interface (:class:`FeedClient`)."""

from clients.base import Counters, FeedClient, Item, Received
from clients.long_poll import LongPollClient
from clients.retry import RetryPolicy, is_retryable
from clients.short_poll import ShortPollClient
from clients.sse import SSEClient
from clients.stream import StreamClient
from clients.websocket import WebSocketClient
from clients.webtransport import WebTransportClient

CLIENTS: dict[str, type[FeedClient]] = {
    "poll": ShortPollClient,
    "long-poll": LongPollClient,
    "sse": SSEClient,
    "ws": WebSocketClient,
    "stream": StreamClient,
    "wt": WebTransportClient,
}

__all__ = [
    "CLIENTS",
    "Counters",
    "FeedClient",
    "Item",
    "LongPollClient",
    "Received",
    "RetryPolicy",
    "SSEClient",
    "ShortPollClient",
    "StreamClient",
    "WebSocketClient",
    "WebTransportClient",
    "is_retryable",
]
