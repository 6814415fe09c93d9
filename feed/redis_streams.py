"""Redis layout of the shared feed: key names, the publish script, stream-entry decoding.

One topic is two keys under the run's prefix: ``<prefix>:seq:<topic>`` (an INCR counter, the
topic's last seq) and ``<prefix>:stream:<topic>`` (a Redis Stream, one entry per event, entry ID
``0-<seq>``, bounded with ``MAXLEN ~ history``). ``<prefix>:epoch`` holds a random token set by
whoever first writes after Redis starts empty: when it changes, Redis lost its data (a restart
without persistence) and every process learns that the seqs started over. See ARCHITECTURE.md.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import orjson

from feed.broker import Subscription
from feed.codec import encoded_from_json
from feed.events import EncodedEvent
from feed.exceptions import CapacityError

# INCR + XADD in one script: the seq is global and gapless across every instance, and an event is
# in the stream under exactly the seq its JSON carries (the JSON is completed here, around the
# seq, so no process ever re-encodes it). No epoch key means Redis lost its data since this
# process last looked: refuse (-1) until an epoch is claimed, so a seq is never silently reused.
# A topic's counter starts at the epoch's floor (0 in a fresh prefix).
PUBLISH_LUA = """
local epoch = redis.call('GET', KEYS[3])
if not epoch then return {-1, ''} end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], redis.call('GET', KEYS[4]) or '0')
end
local seq = redis.call('INCR', KEYS[1])
-- Lua numbers are doubles whose default text form turns large seqs into 1.7e+15: format them.
local id = string.format('%.0f', seq)
local body = ARGV[1] .. id .. ARGV[2]
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '0-' .. id, 'e', body, 't', ARGV[3])
return {seq, epoch}
"""

# Claim a new epoch if there is none. After a reset (the claimer knew an older epoch) the floor
# becomes the current time in microseconds: above any seq the lost data could have held, so old
# cursors are answered with an explicit gap instead of matching new, different events.
CLAIM_LUA = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') and ARGV[2] ~= '0' then
  redis.call('SET', KEYS[2], ARGV[2])
end
return redis.call('GET', KEYS[1])
"""


class BrokerUnavailable(CapacityError):
    """Redis cannot be reached: HTTP 503, clients retry."""

    code = "broker_unavailable"


class TopicState:
    """What one process knows about a topic it serves."""

    __slots__ = ("position", "subscribers", "pending", "waiters")

    def __init__(self, position: int) -> None:
        self.position = position  # last seq fanned out by this process
        # Each subscriber with the last seq its replay covered: the reader may lag behind the
        # XRANGE that built the replay, and must not deliver those events a second time.
        self.subscribers: dict[Subscription, int] = {}
        self.pending: dict[Subscription, list[EncodedEvent]] = {}
        self.waiters: dict[asyncio.Future[None], None] = {}  # an ordered set


FIELD_BODY = b"e"
FIELD_TS = b"t"


def new_token() -> str:
    """A fresh epoch token."""
    return secrets.token_hex(8)


class Keys:
    """Key names under one prefix (``PUSHLAB_REDIS_PREFIX``)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.epoch = f"{prefix}:epoch"
        self.floor = f"{prefix}:floor"

    def seq(self, topic: str) -> str:
        """The topic's counter."""
        return f"{self.prefix}:seq:{topic}"

    def stream(self, topic: str) -> str:
        """The topic's stream."""
        return f"{self.prefix}:stream:{topic}"

    def wake(self, process: str) -> str:
        """A per-process stream written to interrupt that process's blocking XREAD."""
        return f"{self.prefix}:wake:{process}"

    def topic_of(self, stream_key: str) -> str:
        """Inverse of :meth:`stream`."""
        return stream_key.removeprefix(f"{self.prefix}:stream:")


def split_body(topic: str, ts_ns: int, data: Any) -> tuple[bytes, bytes]:
    """The event JSON before and after its seq: orjson's compact form of the four fields."""
    head = b'{"topic":' + orjson.dumps(topic) + b',"seq":'
    tail = b',"ts_ns":%d,"data":' % ts_ns + orjson.dumps(data) + b"}"
    return head, tail


def seq_of(entry_id: bytes | str) -> int:
    """The seq of a stream entry ID ``0-<seq>``."""
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(raw.partition("-")[2])


def entry_event(topic: str, entry_id: bytes, fields: dict[bytes, bytes]) -> EncodedEvent:
    """Wrap a stream entry as an event, reusing its JSON bytes (decoded once per process)."""
    return encoded_from_json(topic, seq_of(entry_id), int(fields[FIELD_TS]), fields[FIELD_BODY])
