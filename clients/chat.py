"""``pushlab chat``: a terminal client for ``WS /chat``, usable by hand or driven through pipes.

Reads lines from stdin::

    /join ROOM          join a room (it becomes the current room)
    /leave ROOM         leave a room
    /msg USER TEXT      direct message
    /who ROOM           list the users in a room
    /room ROOM          switch the current room (must be joined)
    /quit               close and exit
    TEXT                say TEXT in the current room

and prints every incoming frame as one line (see :func:`render`). At end of input it waits (at most
``--drain`` seconds) for the answers to what it sent, then closes with 1000: piping a script of
commands into it is deterministic.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
from itertools import count
from typing import Any
from urllib.parse import urlencode

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

_EOF = object()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``pushlab chat``."""
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="server base URL")
    parser.add_argument("--user", help="your user name (with --token: the token's user)")
    parser.add_argument("--token", help="JWT (POST /token) when the server runs with --auth")
    parser.add_argument("--room", action="append", default=[], help="join at start (repeatable)")
    parser.add_argument("--drain", type=float, default=5.0, help="max wait for replies at EOF, s")


def parse_line(line: str, current: str | None) -> dict[str, Any] | str | None:
    """A client frame for one input line; a ``str`` is a local usage error; None: nothing."""
    line = line.strip()
    if not line:
        return None
    if not line.startswith("/"):
        if current is None:
            return "no current room: /join ROOM first"
        return {"type": "say", "room": current, "text": line}
    cmd, _, rest = line.partition(" ")
    rest = rest.strip()
    if cmd in ("/join", "/leave", "/who", "/room") and rest and " " not in rest:
        return {"type": cmd[1:], "room": rest}
    if cmd == "/msg":
        to, _, text = rest.partition(" ")
        if to and text.strip():
            return {"type": "dm", "to": to, "text": text.strip()}
    if cmd == "/quit":
        return {"type": "quit"}
    return "usage: /join ROOM | /leave ROOM | /msg USER TEXT | /who ROOM | /room ROOM | /quit"


def render(frame: dict[str, Any]) -> str:
    """One human-readable line per server frame."""
    kind = frame.get("type")
    room = frame.get("room")
    if kind == "message":
        return f"[{room} #{frame['seq']}] {frame['from']}: {frame['text']}"
    if kind == "presence":
        return f"[{room} #{frame['seq']}] * {frame['user']} {frame['event']}s"
    if kind == "dm":
        return f"[dm] {frame['from']} -> {frame['to']}: {frame['text']}"
    if kind in ("joined", "who"):
        verb = "joined" if kind == "joined" else "in"
        return f"[{room} #{frame['seq']}] {verb} {room}: {', '.join(frame['members'])}"
    if kind == "left":
        return f"[{room}] left {room}"
    if kind == "welcome":
        return f"# welcome {frame['user']} (connection {frame['conn']}, tabs {frame['tabs']})"
    if kind == "error":
        return f"! {frame['error']}: {frame['detail']}"
    return f"? {orjson.dumps(frame).decode()}"


def _stdin_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> None:
    # A thread, because a blocking stdin read cannot be cancelled; daemon, so exit never waits.
    for line in sys.stdin:
        loop.call_soon_threadsafe(queue.put_nowait, line)
    loop.call_soon_threadsafe(queue.put_nowait, _EOF)


class ChatSession:
    """One connection: sends what stdin asks, prints what arrives, tracks unanswered ids."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.current: str | None = None
        self.pending: set[int] = set()
        self.answered = asyncio.Event()
        self._ids = count(1)

    async def send(self, frame: dict[str, Any]) -> None:
        frame["id"] = next(self._ids)
        self.pending.add(frame["id"])
        self.answered.clear()
        await self.ws.send(orjson.dumps(frame).decode())

    async def receive(self) -> None:
        async for raw in self.ws:
            frame = orjson.loads(raw)
            print(render(frame), flush=True)
            if frame.get("type") == "joined":
                self.current = frame["room"]
            elif frame.get("type") == "left" and self.current == frame["room"]:
                self.current = None
            self.pending.discard(frame.get("id"))
            if not self.pending:
                self.answered.set()

    async def handle(self, line: str) -> bool:
        """Act on one input line; False on /quit."""
        frame = parse_line(line, self.current)
        if frame is None:
            return True
        if isinstance(frame, str):
            print(f"! {frame}", flush=True)
            return True
        if frame["type"] == "quit":
            return False
        if frame["type"] == "room":
            self.current = frame["room"]
            return True
        await self.send(frame)
        return True


async def chat(args: argparse.Namespace) -> int:
    """Run until /quit, end of input, or the server closes."""
    base = "ws" + args.url.rstrip("/").removeprefix("http")
    if args.user is None and args.token is None:
        print("give --user, or --token on a server with --auth", file=sys.stderr)
        return 2
    url = f"{base}/chat?{urlencode({'user': args.user})}" if args.user else f"{base}/chat"
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
    lines: asyncio.Queue[Any] = asyncio.Queue()
    threading.Thread(
        target=_stdin_lines, args=(asyncio.get_running_loop(), lines), daemon=True
    ).start()
    try:
        async with connect(url, open_timeout=10, additional_headers=headers) as ws:
            session = ChatSession(ws)
            receiver = asyncio.ensure_future(session.receive())
            for room in args.room:
                await session.send({"type": "join", "room": room})
            while True:
                getter = asyncio.ensure_future(lines.get())
                await asyncio.wait((getter, receiver), return_when=asyncio.FIRST_COMPLETED)
                if receiver.done():
                    getter.cancel()
                    receiver.result()  # raises ConnectionClosed unless it was a clean close
                    return 0
                line = getter.result()
                if line is _EOF or not await session.handle(line):
                    await _drain(session, args.drain)
                    break
            receiver.cancel()
        return 0
    except InvalidStatus as exc:
        print(f"! refused: HTTP {exc.response.status_code} {exc.response.body!r}", file=sys.stderr)
    except ConnectionClosed as exc:
        print(f"! closed: {exc}", file=sys.stderr)
    except (OSError, TimeoutError) as exc:
        print(f"! cannot connect: {exc}", file=sys.stderr)
    return 1


async def _drain(session: ChatSession, timeout_s: float) -> None:
    """Wait for the answers to what was sent, bounded by ``timeout_s``."""
    if not session.pending:
        return
    try:
        async with asyncio.timeout(timeout_s):
            await session.answered.wait()
    except TimeoutError:
        print(f"! no answer to {len(session.pending)} frame(s)", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Entry of ``pushlab chat``."""
    return asyncio.run(chat(args))
