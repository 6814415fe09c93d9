"""``WS /chat`` against a real server with several real WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from servers.launch import ServerThread
from tests.support import MS, async_wait_until

TIMEOUT = 5 * MS


class Tab:
    """One chat connection: send dicts, wait for frames matching a predicate."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, **frame: Any) -> None:
        await self.ws.send(orjson.dumps(frame).decode())

    async def expect(self, pred: Callable[[dict[str, Any]], bool] = lambda m: True) -> dict:
        """The next frame satisfying ``pred`` (frames before it are kept in ``seen``)."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                frame = orjson.loads(await self.ws.recv())
                self.seen.append(frame)
                if pred(frame):
                    return frame

    async def request(self, **frame: Any) -> dict:
        """Send a frame and return the reply (or error) with the same id."""
        await self.send(**frame)
        return await self.expect(lambda m: m.get("id") == frame["id"])


def of(kind: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["type"] == kind and all(m.get(k) == v for k, v in fields.items())


@pytest.fixture(params=["pushlab-sansio", "websockets-sansio", "wsproto"])
def ws_impl(request) -> str:
    """Both uvicorn WebSocket implementations pushlab may run on."""
    return request.param


@pytest.fixture
def live(serve, settings, ws_impl) -> ServerThread:
    """This module's server runs on each WebSocket implementation in turn."""
    return serve(settings.replace(ws_impl=ws_impl))


@pytest.fixture
def tabs(live: ServerThread):
    """Open chat connections as ``await open_tab(user)``; all closed at teardown."""

    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[Callable[[str], Any]]:
        stack = contextlib.AsyncExitStack()

        async def open_tab(user: str) -> Tab:
            ws = await stack.enter_async_context(
                connect(f"ws://127.0.0.1:{live.port}/chat?user={user}", open_timeout=TIMEOUT)
            )
            tab = Tab(ws)
            await tab.expect(of("welcome", user=user))
            return tab

        async with stack:
            yield open_tab

    return factory


async def test_presence_join_leave_and_who(tabs):
    """Members see joins and leaves; who lists each user once."""
    async with tabs() as open_tab:
        ann, bob = await open_tab("ann"), await open_tab("bob")
        assert (await ann.request(type="join", room="r", id=1))["members"] == ["ann"]
        joined = await bob.request(type="join", room="r", id=2)
        assert joined["members"] == ["ann", "bob"]
        assert await ann.expect(of("presence")) == {
            "type": "presence", "room": "r", "event": "join", "user": "bob", "seq": joined["seq"]
        }  # fmt: skip
        who = await ann.request(type="who", room="r", id=3)
        assert who["members"] == ["ann", "bob"]
        await bob.request(type="leave", room="r", id=4)
        leave = await ann.expect(of("presence", event="leave"))
        assert leave["user"] == "bob" and leave["seq"] == joined["seq"] + 1


async def test_room_order_is_the_same_for_every_member(tabs):
    """Concurrent senders: every member receives the room's frames in one gap-free seq order."""
    n = 50
    async with tabs() as open_tab:
        users = [await open_tab(u) for u in ("ann", "bob", "cy")]
        for i, tab in enumerate(users):
            await tab.request(type="join", room="r", id=f"j{i}")
        start = (await users[0].request(type="who", room="r", id="w"))["seq"]

        async def chatter(tab: Tab, name: str) -> None:
            for i in range(n):
                await tab.send(type="say", room="r", text=f"{name}{i}")

        await asyncio.gather(*(chatter(t, str(k)) for k, t in enumerate(users)))
        last = start + 3 * n
        streams = []
        for tab in users:
            await tab.expect(of("message", seq=last))
            streams.append([(m["seq"], m["text"]) for m in tab.seen if m["type"] == "message"])
        assert streams[0] == streams[1] == streams[2]
        assert [s for s, _ in streams[0]] == list(range(start + 1, last + 1))
        for k in range(3):  # each sender's own messages keep their sending order
            mine = [t for _, t in streams[0] if t.startswith(str(k))]
            assert mine == [f"{k}{i}" for i in range(n)]


async def test_multi_tab_user_is_present_until_last_tab_leaves(tabs):
    """Two tabs of one user: one presence join, and the leave only when the second tab goes."""
    async with tabs() as open_tab:
        bob = await open_tab("bob")
        await bob.request(type="join", room="r", id=1)
        ann1, ann2 = await open_tab("ann"), await open_tab("ann")
        await ann1.request(type="join", room="r", id=1)
        await ann2.request(type="join", room="r", id=2)
        await ann1.ws.close()
        # A marker message proves bob saw no leave before it (frames arrive in seq order).
        await bob.request(type="say", room="r", text="marker", id=9)
        assert [m for m in bob.seen if m["type"] == "presence"] == [
            {"type": "presence", "room": "r", "event": "join", "user": "ann", "seq": 2}
        ]
        assert (await bob.request(type="who", room="r", id=10))["members"] == ["ann", "bob"]
        await ann2.ws.close()
        leave = await bob.expect(of("presence", event="leave"))
        assert leave["user"] == "ann"
        assert (await bob.request(type="who", room="r", id=11))["members"] == ["bob"]


async def test_rooms_are_isolated_and_dms_reach_every_tab(tabs):
    """A room message stays in its room; a DM reaches all the recipient's tabs."""
    async with tabs() as open_tab:
        ann, bob1, bob2, cy = [await open_tab(u) for u in ("ann", "bob", "bob", "cy")]
        await ann.request(type="join", room="a", id=1)
        await cy.request(type="join", room="b", id=1)
        await ann.request(type="say", room="a", text="in a", id=2)
        await cy.request(type="say", room="b", text="in b", id=2)
        await ann.request(type="dm", to="bob", text="psst", id=3)
        for bob in (bob1, bob2):
            dm = await bob.expect(of("dm"))
            assert dm["from"] == "ann" and dm["text"] == "psst"
        await cy.request(type="dm", to="ann", text="end", id=4)
        await ann.expect(of("dm", text="end"))
        texts = [m.get("text") for m in ann.seen + cy.seen if m["type"] == "message"]
        assert sorted(texts) == ["in a", "in b"]  # each saw only its own room's message
        assert not [m for m in bob1.seen + bob2.seen if m["type"] == "message"]


async def test_refusals_keep_the_connection(tabs):
    """Saying in a room not joined, or DMing an offline user, is refused with an error frame."""
    async with tabs() as open_tab:
        ann, bob = await open_tab("ann"), await open_tab("bob")
        await bob.request(type="join", room="r", id=1)
        err = await ann.request(type="say", room="r", text="hi", id=5)
        assert err["type"] == "error" and err["error"] == "not_member"
        err = await ann.request(type="dm", to="nobody", text="hi", id=6)
        assert err["error"] == "user_offline"
        await bob.request(type="say", room="r", text="still here", id=7)
        assert not [m for m in bob.seen if m.get("text") == "hi"]
        assert (await ann.request(type="join", room="r", id=8))["type"] == "joined"


async def test_garbage_gets_error_frames_then_1008(tabs, settings):
    """Bad JSON, schema violations and binary frames get error frames; the Nth closes 1008."""
    async with tabs() as open_tab:
        ann = await open_tab("ann")
        bad = ["nope", '{"type":"fly"}', b"\x00\x01", '{"type":"join","room":"x y"}']
        codes = []
        for i in range(settings.ws_max_bad_messages - 1):
            await ann.ws.send(bad[i % len(bad)])
            codes.append((await ann.expect(of("error")))["error"])
        assert codes[:4] == ["invalid_json", "invalid_message", "unsupported", "invalid_message"]
        await ann.ws.send("again")
        with pytest.raises(ConnectionClosed) as info:
            await ann.expect()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008


@pytest.mark.parametrize("query", ["", "?user=", "?user=a%20b", "?user=" + "x" * 65])
async def test_bad_user_refused_before_upgrade(live, query):
    """A missing or invalid ?user= is an HTTP 400 with a JSON error body."""
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"ws://127.0.0.1:{live.port}/chat{query}", open_timeout=TIMEOUT):
            pass
    response = info.value.response
    assert response.status_code == 400
    assert orjson.loads(response.body)["error"] == "bad_user"


async def test_disconnect_cleans_up_rooms_and_users(tabs, live):
    """Abruptly dropped connections leave no room, user or queue behind."""
    async with tabs() as open_tab:
        ann, bob = await open_tab("ann"), await open_tab("bob")
        for tab in (ann, bob):
            await tab.request(type="join", room="r", id=1)
            await tab.request(type="join", room="s", id=2)
        ann.ws.transport.abort()  # no close handshake: the TCP connection just goes
        for room in ("r", "s"):
            await bob.expect(of("presence", event="leave", user="ann", room=room))
        await bob.ws.close()
    hub = live.app.state.pushlab_chat  # the app's own ChatHub
    await async_wait_until(lambda: hub.rooms.connections() == 0, what="connections gone")
    assert hub.rooms.rooms() == [] and hub.rooms.users() == [] and hub.peers == {}


async def test_slow_reader_is_closed_1013_without_stalling_the_room(serve, settings, ws_impl):
    """A member that stops reading is closed with 1013; the others keep receiving."""
    server = serve(settings.replace(subscriber_buffer=8, ws_impl=ws_impl))
    url = f"ws://127.0.0.1:{server.port}/chat"
    async with (
        connect(f"{url}?user=ann", open_timeout=TIMEOUT) as ann_ws,
        connect(f"{url}?user=zed", open_timeout=TIMEOUT, max_queue=1, compression=None) as zed_ws,
    ):
        ann, zed = Tab(ann_ws), Tab(zed_ws)
        await zed.request(type="join", room="r", id=1)
        await ann.request(type="join", room="r", id=1)
        text = "x" * settings.chat_max_text
        # zed reads nothing from here on: its TCP buffers, then its queue, fill up.
        leaves: list[dict] = []
        for i in range(5000):  # bounded: ~20 MB, more than loopback buffers hold
            await ann.send(type="say", room="r", text=text, id=i)
            if i % 50 == 49:
                await ann.expect(of("message", id=i))  # ann keeps up with the room
                leaves = [m for m in ann.seen if m["type"] == "presence"]
                if leaves:
                    break
        assert [(m["event"], m["user"]) for m in leaves] == [("leave", "zed")]
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await zed_ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1013
