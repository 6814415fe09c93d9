"""Redis-backed broker: every instance shares one gapless seq, one history and one live feed.

Design (ARCHITECTURE.md has the diagrams and the reasons): publish runs one Lua script (INCR the
topic's seq, XADD the finished event JSON under entry ID ``0-<seq>``, MAXLEN ~ history). Each
process runs ONE reader task, a blocking XREAD over the streams of every topic it serves, and fans
each entry out to its local subscribers; it decodes an entry once and shares the bytes. History
reads (polls, replays) are XRANGEs, so a resume works on any instance, after any instance died.
When Redis comes back empty the epoch token changes: local streams are closed (reason ``reset``)
and reconnecting clients get an explicit ``gap`` (``ahead``), never a silent jump.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from feed.broker import KICKED, SHUTDOWN, Subscription, Unwatch, resolve_waiter, wait_for_news
from feed.codec import encoded_from_json
from feed.events import EncodedEvent, Gap, check_topic
from feed.exceptions import TopicLimit
from feed.history import EVENT_OVERHEAD, Batch, resolve
from feed.redis_streams import (
    CLAIM_LUA,
    PUBLISH_LUA,
    BrokerUnavailable,
    Keys,
    TopicState,
    entry_event,
    new_token,
    split_body,
)
from feed.settings import DEFAULT_HISTORY_BYTES

RESET = "reset"
READ_BLOCK_MS = 5_000
READ_COUNT = 1_000


class RedisBroker:
    """The shared backend selected by ``--broker redis://host:port/db``."""

    def __init__(
        self,
        url: str,
        prefix: str,
        history: int,
        max_topics: int = 10_000,
        history_bytes: int = DEFAULT_HISTORY_BYTES,
    ) -> None:
        self.url, self.keys, self.capacity, self.max_topics = url, Keys(prefix), history, max_topics
        self.history_bytes = history_bytes
        self.process = f"{os.getpid()}-{new_token()}"
        self._topics: dict[str, TopicState] = {}
        self._epoch: str | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self.published = self.read_entries = self.reader_errors = self.resets = 0
        # Publishing is not idempotent: never let the client library retry it behind our back.
        opts: dict[str, Any] = {"retry": Retry(NoBackoff(), 0), "socket_connect_timeout": 2}
        # A bounded pool that makes bursts wait for a connection instead of failing.
        pool = BlockingConnectionPool.from_url(url, max_connections=64, timeout=5, **opts)
        self._cmd: Redis = Redis(connection_pool=pool, socket_timeout=5)
        self._blocking: Redis = Redis.from_url(url, socket_timeout=None, **opts)
        self._script = self._cmd.register_script(PUBLISH_LUA)
        self._claim = self._cmd.register_script(CLAIM_LUA)

    async def start(self) -> None:
        """Learn the epoch and start the reader."""
        with contextlib.suppress(RedisError, OSError):
            await self._sync_epoch()
        self._reader = asyncio.create_task(self._read_loop(), name="redis-reader")

    async def close(self) -> None:
        """End local subscriptions, stop the reader, drop this process's wake key."""
        self._closing = True
        await self.kick(None, SHUTDOWN)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(RedisError, OSError):
            await self._cmd.delete(self.keys.wake(self.process))
        await self._cmd.aclose(close_connection_pool=True)
        await self._blocking.aclose()

    async def publish(self, topic: str, data: Any) -> EncodedEvent:
        """Sequence and append atomically in Redis; the reader does the fan-out."""
        check_topic(topic)
        ts_ns = time.time_ns()
        head, tail = split_body(topic, ts_ns, data)
        keys = [self.keys.seq(topic), self.keys.stream(topic), self.keys.epoch, self.keys.floor]
        maxlen = self._maxlen(len(head) + len(tail))
        try:
            for _ in range(2):
                seq, epoch = await self._script(keys=keys, args=[head, tail, ts_ns, maxlen])
                if seq != -1:
                    break
                await self._sync_epoch()  # Redis came back empty: claim an epoch, then retry
            else:
                raise BrokerUnavailable("redis: no epoch")
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"redis: {exc}") from None
        self.published += 1
        self._note_epoch(epoch)
        return encoded_from_json(topic, int(seq), ts_ns, head + str(seq).encode() + tail)

    async def publish_many(self, topic: str, datas: Sequence[Any]) -> list[EncodedEvent]:
        """One script call each (seqs come from Redis); the reader fans out what one XREAD
        returns as one run per subscriber."""
        return [await self.publish(topic, data) for data in datas]

    def _maxlen(self, body_bytes: int) -> int:
        """The stream's MAXLEN for this XADD: the count cap, lowered so that this many events of
        this size fit ``history_bytes`` as :func:`feed.history.retained_size` charges them.

        Redis trims by count only (MAXLEN/MINID), so the byte cap is enforced by the count each
        publish asks for: a stream of similar-sized events stays under ``history_bytes``; when
        sizes vary, small events trimmed with a large MAXLEN can sit behind big ones kept by an
        earlier small MAXLEN, up to about twice that (docs/protocol.md "Memory bounds").
        """
        # The event's JSON is head + seq + tail; its three wire forms as the memory broker counts.
        cost = 3 * (body_bytes + 20) + EVENT_OVERHEAD
        return max(1, min(self.capacity, self.history_bytes // cost))

    async def _state(
        self, topic: str, since: int | None, limit: int | None
    ) -> tuple[int, Gap | None, list[EncodedEvent], int]:
        """One atomic look at Redis: (start, gap, events after start, last seq)."""
        after = 0 if since is None else since
        try:
            async with self._cmd.pipeline(transaction=True) as pipe:
                pipe.get(self.keys.seq(topic))
                pipe.get(self.keys.floor)
                pipe.xrange(self.keys.stream(topic), "-", "+", count=1)
                pipe.xrange(self.keys.stream(topic), f"0-{after + 1}", "+", count=limit)
                raw_last, floor, first, entries = await pipe.execute()
            # A topic not yet published in this epoch is "at the floor" (0 in a fresh prefix).
            last = int(raw_last or floor or 0)
            oldest = entry_event(topic, *first[0]).seq if first else None
            start, gap = resolve(topic, since, oldest, last)
            if since is None:
                entries = []
            elif start != since:
                # Expired cursor: serve from the oldest retained event instead.
                entries = await self._cmd.xrange(
                    self.keys.stream(topic), f"0-{start + 1}", "+", count=limit
                )
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"redis: {exc}") from None
        events = [e for e in (entry_event(topic, i, f) for i, f in entries) if e.seq > start]
        return start, gap, events, last

    async def read(self, topic: str, since: int | None, limit: int) -> Batch:
        """Events after ``since`` straight from the shared stream."""
        check_topic(topic)
        start, gap, events, last = await self._state(topic, since, limit)
        cursor = events[-1].seq if events else start
        return Batch(events, cursor, cursor < last, last, gap)

    async def wait(self, topic: str, after: int, timeout: float) -> bool:
        return await wait_for_news(self, topic, after, timeout)

    async def watch(self, topic: str, after: int, waiter: asyncio.Future[None]) -> Unwatch:
        """Register first, then check Redis: an event landing in between still wakes ``waiter``."""
        t = await self._track(topic)
        t.waiters[waiter] = None

        def unwatch() -> None:
            t.waiters.pop(waiter, None)
            self._untrack(topic, t)

        try:
            if t.position > after or await self._last_seq(topic) > after:
                resolve_waiter(waiter)
        except BaseException:
            unwatch()
            raise
        return unwatch

    async def _last_seq(self, topic: str) -> int:
        try:
            raw_last, floor = await self._cmd.mget(self.keys.seq(topic), self.keys.floor)
            return int(raw_last or floor or 0)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"redis: {exc}") from None

    @asynccontextmanager
    async def subscribe(
        self, topic: str, since: int | None, maxsize: int
    ) -> AsyncIterator[Subscription]:
        """Buffer live events, read the replay, then merge: no window, no duplicate."""
        t = await self._track(topic)
        sub = Subscription(topic, maxsize, 0)
        t.pending[sub] = []
        try:
            start, gap, events, _ = await self._state(topic, since, None)
            live = t.pending.pop(sub)
            upto = events[-1].seq if events else start
            sub.cursor, sub.gap = start, gap
            sub.feed_many(events + [e for e in live if e.seq > upto])
            t.subscribers[sub] = max(upto, live[-1].seq if live else 0)
            yield sub
        finally:
            t.pending.pop(sub, None)
            t.subscribers.pop(sub, None)
            self._untrack(topic, t)

    async def _track(self, topic: str) -> TopicState:
        """The local state of ``topic``; the first time, the reader starts following its stream."""
        check_topic(topic)
        t = self._topics.get(topic)
        if t is not None:
            return t
        if len(self._topics) >= self.max_topics:
            # Tracked topics are exactly the held ones (_untrack), as in the memory broker.
            raise TopicLimit(f"topic limit ({self.max_topics}) reached, every topic is held")
        position = await self._last_seq(topic)
        while True:
            t = self._topics.setdefault(topic, TopicState(position))
            with contextlib.suppress(RedisError, OSError):
                # Interrupt the blocking XREAD so it includes the new stream from `position` on.
                await self._cmd.xadd(self.keys.wake(self.process), {"w": 1}, maxlen=10)
                await self._cmd.expire(self.keys.wake(self.process), 3600)
            # The caller registers as soon as this returns, but during the wake another task's
            # last holder may have left and untracked the topic: then track it again.
            if self._topics.get(topic) is t:
                return t

    def _untrack(self, topic: str, t: TopicState) -> None:
        """Stop following a topic nobody here holds (its history stays in Redis).

        The reader drops it from its next XREAD; entries an XREAD already in flight returns for
        it are skipped, and a later subscriber tracks it again from the seq Redis holds then.
        """
        if not (t.subscribers or t.pending or t.waiters) and self._topics.get(topic) is t:
            del self._topics[topic]

    async def _read_loop(self) -> None:
        wake_key, wake_id = self.keys.wake(self.process), "0-0"
        delay, synced = 0.05, self._epoch is not None
        while not self._closing:
            if not synced:
                # Never resume reading before the epoch is checked: positions may be stale.
                try:
                    await self._sync_epoch()
                    synced = True
                except (RedisError, OSError):
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
            streams: dict[Any, Any] = {wake_key: wake_id}
            for name, t in self._topics.items():
                streams[self.keys.stream(name)] = f"0-{t.position}"
            try:
                reply: Any = await self._blocking.xread(
                    streams, count=READ_COUNT, block=READ_BLOCK_MS
                )
            except (RedisError, OSError):
                self.reader_errors += 1
                synced = False
                continue
            delay = 0.05
            for key, entries in reply or []:
                name = key.decode()
                if name == wake_key:
                    wake_id = entries[-1][0].decode()
                    continue
                self._fan_out(self.keys.topic_of(name), entries)

    def _fan_out(self, topic: str, entries: list[Any]) -> None:
        t = self._topics.get(topic)
        if t is None:
            return  # untracked while the XREAD was in flight
        run: list[EncodedEvent] = []
        for entry_id, fields in entries:
            event = entry_event(topic, entry_id, fields)
            if event.seq <= t.position:
                continue
            t.position = event.seq
            run.append(event)
            for buffered in t.pending.values():
                buffered.append(event)
        self.read_entries += len(run)
        for sub, covered in t.subscribers.items():
            if run and run[0].seq > covered:
                sub.feed_run(run)
            else:
                sub.feed_run([e for e in run if e.seq > covered])
        if t.waiters:
            waiters, t.waiters = t.waiters, {}
            for w in waiters:
                resolve_waiter(w)

    async def _sync_epoch(self) -> None:
        """After (re)connecting: claim the epoch if Redis is empty, then compare with ours."""
        floor = 0 if self._epoch is None else time.time_ns() // 1000
        keys = [self.keys.epoch, self.keys.floor]
        self._note_epoch(await self._claim(keys=keys, args=[new_token(), floor]))

    def _note_epoch(self, raw: bytes | str | None) -> None:
        epoch = raw.decode() if isinstance(raw, bytes) else raw
        if epoch is None or epoch == self._epoch:
            return
        if self._epoch is not None:
            # Redis lost its data: seqs start over. Close local streams so clients reconnect and
            # get an explicit gap; restart every reader position from the new beginning.
            self.resets += 1
            for t in self._topics.values():
                t.position = 0
                for sub in list(t.subscribers):
                    sub.close(RESET)
        self._epoch = epoch

    async def kick(self, topic: str | None, reason: str = KICKED) -> int:
        """Close this process's live subscriptions (other instances keep theirs)."""
        topics = self._topics.values() if topic is None else [self._topics.get(topic)]
        n = 0
        for t in topics:
            for sub in list(t.subscribers) if t is not None else []:
                sub.close(reason)
                n += 1
        return n

    def stats(self) -> dict[str, Any]:
        """Local counters; the seqs themselves live in Redis."""
        return {
            "backend": "redis",
            "topics": len(self._topics),
            "subscribers": sum(len(t.subscribers) for t in self._topics.values()),
            "published": self.published,
            "read_entries": self.read_entries,
            "reader_errors": self.reader_errors,
            "resets": self.resets,
        }
