"""The whiteboard endpoints on a real server: fan-out, catch-up, presence, and bad input."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from servers.launch import ServerThread
from tests.support import MS

STROKE = {"type": "stroke", "color": "#ff0000", "width": 2, "points": [[1, 2], [30, 40]]}
TIMEOUT = 5 * MS


def ws_url(server: ServerThread, board: str, user: str, since: int | None = None) -> str:
    url = f"ws://127.0.0.1:{server.port}/whiteboard/ws?board={board}&user={user}"
    return url if since is None else f"{url}&since={since}"


async def recv(ws: ClientConnection) -> dict[str, Any]:
    import asyncio

    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def recv_type(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """The next frame of type ``kind``, skipping the snapshot and presence or cursor chatter."""
    while True:
        frame = await recv(ws)
        if frame["type"] == kind:
            return frame
        assert frame["type"] in ("snapshot", "presence", "cursor"), frame


@pytest.fixture
def board_settings(settings):
    # A bucket of 6 that does not refill within a test: flood checks cannot depend on timing.
    return settings.replace(board_max_message_bytes=2048, board_rate=0.001, board_burst=6)


@pytest.fixture
def server(serve, board_settings) -> ServerThread:
    return serve(board_settings)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=TIMEOUT) as client:
        yield client


async def test_strokes_reach_every_client_and_ack_the_sender(server):
    """A stroke comes back to its sender with a seq and reaches the other client."""
    async with (
        connect(ws_url(server, "b", "ann")) as ann,
        connect(ws_url(server, "b", "bob")) as bob,
    ):
        assert (await recv(ann))["type"] == "snapshot"
        assert (await recv_type(ann, "ready"))["seq"] == 0
        await recv_type(bob, "ready")
        assert (await recv_type(ann, "presence"))["users"] == ["ann", "bob"]
        await ann.send(json.dumps(STROKE | {"id": "s1"}))
        for ws in (ann, bob):
            op = await recv_type(ws, "stroke")
            assert (op["seq"], op["user"], op["id"]) == (1, "ann", "s1")
        await bob.send(json.dumps({"type": "cursor", "x": 3, "y": 4, "drawing": True}))
        assert (await recv_type(ann, "cursor"))["user"] == "bob"
    async with connect(ws_url(server, "b", "cat")) as cat:
        assert (await recv(cat))["strokes"][0]["id"] == "s1"


async def test_late_joiner_gets_snapshot_and_reconnect_gets_replay(server):
    """A newcomer gets a snapshot; a client resuming from seq N gets only the ops after N."""
    async with connect(ws_url(server, "b", "ann")) as ann:
        await recv_type(ann, "ready")
        for i in range(3):
            await ann.send(json.dumps(STROKE | {"id": f"s{i}"}))
            await recv_type(ann, "stroke")
        await ann.send('{"type":"undo"}')
        assert (await recv_type(ann, "undo"))["seq"] == 4
    async with connect(ws_url(server, "b", "late")) as late:
        snap = await recv(late)
        assert snap["type"] == "snapshot" and snap["seq"] == 4
        assert [s["id"] for s in snap["strokes"]] == ["s0", "s1"]
    async with connect(ws_url(server, "b", "ann", since=2)) as again:
        frames = [await recv(again), await recv(again), await recv(again)]
        assert [(f["type"], f.get("seq")) for f in frames] == [
            ("stroke", 3),
            ("undo", 4),
            ("ready", 4),
        ]
    async with connect(ws_url(server, "b", "ann", since=99)) as other_life:
        assert (await recv(other_life))["type"] == "snapshot"


async def test_boards_are_isolated(server):
    """A stroke on one board never appears on another."""
    async with connect(ws_url(server, "x", "ann")) as x:
        await recv_type(x, "ready")
        await x.send(json.dumps(STROKE | {"id": "s"}))
        await recv_type(x, "stroke")
    async with connect(ws_url(server, "y", "ann")) as y:
        snap = await recv(y)
        assert snap["board"] == "y" and snap["seq"] == 0 and snap["strokes"] == []


async def test_presence_follows_connections(server):
    """Users appear on arrival and disappear when their last connection leaves."""
    async with connect(ws_url(server, "p", "ann")) as ann:
        assert (await recv_type(ann, "ready"))["users"] == ["ann"]
        async with connect(ws_url(server, "p", "bob")):
            assert (await recv_type(ann, "presence"))["users"] == ["ann", "bob"]
        assert (await recv_type(ann, "presence"))["users"] == ["ann"]


async def test_malformed_frames_get_errors_then_1008(server, board_settings):
    """Each bad frame gets an error frame; the ws_max_bad_messages-th closes with 1008."""
    async with connect(ws_url(server, "m", "ann")) as ann:
        await recv_type(ann, "ready")
        await ann.send("nonsense")
        err = await recv_type(ann, "error")
        assert err["error"] == "invalid_message"
        await ann.send(json.dumps(STROKE | {"id": "s", "points": [[1, 99999]]}))
        assert (await recv_type(ann, "error"))["detail"][0]["loc"][0] == "stroke"
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(board_settings.ws_max_bad_messages):
                await ann.send('{"type": "undo"}')  # nothing to undo: also a refused frame
                await recv_type(ann, "error")
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_huge_frame_closes_1009(server, board_settings):
    """A frame over board_max_message_bytes closes the socket with 1009."""
    async with connect(ws_url(server, "h", "ann")) as ann:
        await recv_type(ann, "ready")
        await ann.send("x" * (board_settings.board_max_message_bytes + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ann)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_flood_is_rate_limited(server):
    """Past the burst, frames are refused with rate_limited and nothing is applied."""
    async with connect(ws_url(server, "f", "ann")) as ann:
        await recv_type(ann, "ready")
        for i in range(8):
            await ann.send(json.dumps(STROKE | {"id": f"s{i}"}))
        frames = [await recv(ann) for _ in range(8)]
        kinds = [f["type"] for f in frames]
        assert kinds == ["stroke"] * 6 + ["error"] * 2
        assert frames[-1]["error"] == "rate_limited"
    async with connect(ws_url(server, "f", "bob")) as bob:
        assert len((await recv(bob))["strokes"]) == kinds.count("stroke")


@pytest.mark.parametrize(
    ("query", "status"),
    [("board=&user=a", 400), ("board=b&user=a b", 400), ("board=b&user=a&since=-1", 400)],
)
async def test_bad_query_refuses_the_upgrade(server, query, status):
    """Bad board, user or cursor: the upgrade is refused with HTTP 400."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{server.port}/whiteboard/ws?{query}"):
            pass
    assert refused.value.response.status_code == status


async def test_too_many_boards_is_503(serve, settings):
    """Past board_max_boards a new board is refused with 503 (WS) / 503 (HTTP)."""
    server = serve(settings.replace(board_max_boards=1))
    async with connect(ws_url(server, "one", "ann")) as ann:
        await recv_type(ann, "ready")
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(server, "two", "ann")):
                pass
        assert refused.value.response.status_code == 503


async def test_sse_downstream_and_post_upstream(server, http):
    """POSTed frames reach an SSE subscriber with id = seq; errors have documented statuses."""
    base = f"{server.url}/whiteboard"
    q = {"board": "s", "user": "ann"}
    async with aconnect_sse(http, "GET", f"{base}/sse", params=q) as source:
        events = (e async for e in source.aiter_sse() if e.data)  # skip the retry-only block
        first = await anext(events)
        assert json.loads(first.data)["type"] == "snapshot"
        r = await http.post(f"{base}/send", params=q, json=STROKE | {"id": "s1"})
        assert r.status_code == 200 and r.json() == {"seq": 1}
        while (sse := await anext(events)).id != "1":
            assert json.loads(sse.data)["type"] in ("ready", "presence")
        assert json.loads(sse.data)["id"] == "s1"
    bad = await http.post(f"{base}/send", params=q, content=b"{")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_message"
    assert (await http.post(f"{base}/send", params=q, json={"type": "undo"})).status_code == 200
    conflict = await http.post(f"{base}/send", params=q, json={"type": "undo"})
    assert conflict.status_code == 409 and conflict.json()["error"] == "nothing_to_undo"
    huge = await http.post(f"{base}/send", params=q, content=b"x" * 5000)
    assert huge.status_code == 413
    name = await http.post(f"{base}/send", params={"board": "s", "user": "a/b"}, json=STROKE)
    assert name.status_code == 400 and name.json()["error"] == "bad_user"


async def test_post_flood_is_429(server, http):
    """POST senders past the bucket get 429 with Retry-After."""
    q = {"board": "r", "user": "ann"}
    codes = [
        (
            await http.post(
                f"{server.url}/whiteboard/send", params=q, json={"type": "cursor", "x": 1, "y": 1}
            )
        ).status_code
        for _ in range(8)
    ]
    assert codes == [200] * 6 + [429] * 2
    r = await http.post(f"{server.url}/whiteboard/send", params=q, json={"type": "clear"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
