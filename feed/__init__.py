"""pushlab's sans-I/O core: events, codec, history, broker seam, settings, errors."""

from feed.broker import Broker, Subscription
from feed.codec import decode_event, encode_event, parse_cursor
from feed.events import EncodedEvent, FeedEvent, Gap, check_topic
from feed.exceptions import (
    BadCursor,
    BadInput,
    BadTopic,
    CapacityError,
    ConnectionClosedOK,
    FatalTransportError,
    PayloadTooLarge,
    PushlabError,
    SubscriptionClosed,
    TopicLimit,
    TransportError,
)
from feed.history import Batch, History
from feed.memory import MemoryBroker
from feed.settings import Settings

__all__ = [
    "BadCursor",
    "BadInput",
    "BadTopic",
    "Batch",
    "Broker",
    "CapacityError",
    "ConnectionClosedOK",
    "EncodedEvent",
    "FatalTransportError",
    "FeedEvent",
    "Gap",
    "History",
    "MemoryBroker",
    "PayloadTooLarge",
    "PushlabError",
    "Settings",
    "Subscription",
    "SubscriptionClosed",
    "TopicLimit",
    "TransportError",
    "check_topic",
    "decode_event",
    "encode_event",
    "parse_cursor",
]
